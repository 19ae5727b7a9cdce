// A streaming gzip decoder for image layers, in the thread that calls it.
//
// It uses the zlib that Node itself exports (Chromium's, with SIMD inflate and crc32): no library
// of its own. One GzipDecoder wraps one z_stream. decompress(input, offset, output) runs inflate()
// until the output is full or the input is used up, so the caller decides how much is produced per
// call (a decompression bomb cannot make one call produce more than output.length bytes).
//
// It reads what Node's zlib.createGunzip() reads: one or more gzip members back to back, then
// optionally zero bytes (padding); anything else after a member must be another member. The end of
// the data inside a member is an error ("unexpected end of file", as Node says), checked by finish().
//
// new GzipDecoder(checkTrailer = true): with false, the members' crc32 and length trailers are not
// computed or compared (inflateValidate). Only for a caller that verifies the output by a stronger
// means: image layers whose diffID (the sha256 of exactly these bytes) is checked.
#include "decoder_args.h"
#include "gzip_stream.h"

#include <zlib.h>

#include <cstring>
#include <string>

namespace sbx::gzip {
namespace {

using decoder::ThrowCoded;

// Where the decoder is between members.
enum class State { kMember, kBetween, kPadding };

class GzipDecoder : public Napi::ObjectWrap<GzipDecoder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "GzipDecoder",
                       {InstanceMethod<&GzipDecoder::Decompress>("decompress"),
                        InstanceMethod<&GzipDecoder::Finish>("finish"),
                        InstanceMethod<&GzipDecoder::Close>("close")});
  }

  explicit GzipDecoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GzipDecoder>(info) {
    std::memset(&stream_, 0, sizeof stream_);
    // 16 + 15: a gzip wrapper (header and crc32/size trailer checked), the largest window (32 KiB).
    if (info.Length() > 0 && !info[0].IsBoolean()) {
      Napi::TypeError::New(info.Env(), "GzipDecoder(checkTrailer?: boolean)").ThrowAsJavaScriptException();
      return;
    }
    check_trailer_ = info.Length() == 0 || info[0].As<Napi::Boolean>().Value();
    if (inflateInit2(&stream_, 16 + 15) != Z_OK) {
      Napi::Error::New(info.Env(), "inflateInit2 failed").ThrowAsJavaScriptException();
      return;
    }
    open_ = true;
    inflateValidate(&stream_, check_trailer_ ? 1 : 0);
  }

  ~GzipDecoder() override { Free(); }

 private:
  void Free() {
    if (open_) inflateEnd(&stream_);
    open_ = false;
  }

  // decompress(input: Uint8Array, offset: number, output: Uint8Array): [offsetAfter, produced]
  Napi::Value Decompress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!open_) return ThrowCoded(env, "gzip decoder is closed", "ERR_GZIP_CLOSED");
    decoder::Args a;
    if (!decoder::ReadArgs(info, UINT32_MAX, a)) return env.Undefined();  // z_stream counts in uInt
    Napi::Uint8Array input = a.input, output = a.output;
    Bytef* in = input.Data();
    size_t pos = a.offset;
    const size_t in_len = input.ByteLength();
    stream_.next_out = output.Data();
    stream_.avail_out = static_cast<uInt>(output.ByteLength());
    // Inside a member inflate() is called even without input left: a full output may have left
    // decoded bytes pending in the window (it returns Z_BUF_ERROR when there is nothing to do).
    while (stream_.avail_out > 0) {
      if (state_ != State::kMember) {
        if (pos >= in_len) break;
        if (state_ == State::kPadding) {
          // Only zero bytes may follow the first zero byte after a member.
          for (; pos < in_len; pos++) {
            if (in[pos] != 0) return ThrowCoded(env, "trailing garbage after gzip data", "Z_DATA_ERROR");
          }
          break;
        }
        if (in[pos] == 0) {
          state_ = State::kPadding;
          continue;
        }
        // Another member follows (Node's gunzip reads concatenated members too).
        inflateReset(&stream_);
        inflateValidate(&stream_, check_trailer_ ? 1 : 0);
        state_ = State::kMember;
      }
      stream_.next_in = in + pos;
      stream_.avail_in = static_cast<uInt>(in_len - pos);
      int rc = inflate(&stream_, Z_NO_FLUSH);
      pos = in_len - stream_.avail_in;
      if (rc == Z_STREAM_END) {
        state_ = State::kBetween;
        continue;
      }
      if (rc == Z_OK) continue;
      if (rc == Z_BUF_ERROR) break;  // no progress possible: needs more input
      if (rc == Z_MEM_ERROR) return ThrowCoded(env, "out of memory", "Z_MEM_ERROR");
      const char* message = stream_.msg != nullptr ? stream_.msg : "invalid gzip data";
      return ThrowCoded(env, message, rc == Z_NEED_DICT ? "Z_NEED_DICT" : "Z_DATA_ERROR");
    }
    stream_.next_in = nullptr;
    stream_.avail_in = 0;
    const size_t produced = output.ByteLength() - stream_.avail_out;
    stream_.next_out = nullptr;
    stream_.avail_out = 0;
    Napi::Array result = Napi::Array::New(env, 2);
    result.Set(0u, Napi::Number::New(env, static_cast<double>(pos)));
    result.Set(1u, Napi::Number::New(env, static_cast<double>(produced)));
    return result;
  }

  // finish(): throws unless the data ended after a complete member (and optional zero padding).
  // Call it only once decompress() has been given all the input and produced less than its output.
  Napi::Value Finish(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (state_ == State::kMember) return ThrowCoded(env, "unexpected end of file", "Z_BUF_ERROR");
    return env.Undefined();
  }

  // Frees the z_stream now rather than at garbage collection.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Free();
    return info.Env().Undefined();
  }

  z_stream stream_;
  bool open_ = false;
  bool check_trailer_ = true;
  State state_ = State::kMember;
};

}  // namespace

Napi::Function DefineDecoder(Napi::Env env) { return GzipDecoder::Define(env); }

}  // namespace sbx::gzip
