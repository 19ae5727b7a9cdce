// sbx_zstd: a streaming zstd decoder (the reference libzstd) for image layers; the addon also
// exports the gzip decoder of gzip_stream.cc (zlib as Node exports it).
//
// One ZstdDecoder wraps one ZSTD_DCtx. decompress(input, offset, output) runs ZSTD_decompressStream
// once: it reads from input[offset..] and writes at most output.length bytes, so the caller decides
// how much is produced per call and can stop producing while its consumer is behind (backpressure
// lives in the TypeScript wrapper, worker/src/images/layers/zstd-decompress.ts). The window is capped with
// ZSTD_d_windowLogMax, so a frame cannot make the decoder allocate more than 2^windowLogMax bytes.
//
// Context-aware (NODE_API_MODULE, no static JS references): it loads in worker threads too.
#include <napi.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getFrameHeader, ZSTD_FRAMEHEADERSIZE_MAX
#include <zstd.h>
#include "decoder_args.h"
#include "gzip_stream.h"
#include <zstd_errors.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace {

using sbx::decoder::ThrowCoded;

class ZstdDecoder : public Napi::ObjectWrap<ZstdDecoder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ZstdDecoder",
                       {InstanceMethod<&ZstdDecoder::Decompress>("decompress"),
                        InstanceMethod<&ZstdDecoder::Close>("close")});
  }

  explicit ZstdDecoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ZstdDecoder>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) {
      Napi::TypeError::New(env, "ZstdDecoder(windowLogMax: number)").ThrowAsJavaScriptException();
      return;
    }
    window_log_max_ = info[0].As<Napi::Number>().Int32Value();
    ZSTD_bounds bounds = ZSTD_dParam_getBounds(ZSTD_d_windowLogMax);
    if (window_log_max_ < bounds.lowerBound || window_log_max_ > bounds.upperBound) {
      Napi::RangeError::New(env, "windowLogMax out of libzstd's bounds").ThrowAsJavaScriptException();
      return;
    }
    dctx_ = ZSTD_createDCtx();
    if (dctx_ == nullptr) {
      Napi::Error::New(env, "ZSTD_createDCtx failed").ThrowAsJavaScriptException();
      return;
    }
    size_t rc = ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, window_log_max_);
    if (ZSTD_isError(rc)) {
      Napi::Error::New(env, std::string("ZSTD_d_windowLogMax: ") + ZSTD_getErrorName(rc)).ThrowAsJavaScriptException();
      return;
    }
  }

  ~ZstdDecoder() override { Free(); }

 private:
  void Free() {
    if (dctx_ != nullptr) ZSTD_freeDCtx(dctx_);
    dctx_ = nullptr;
  }

  // decompress(input: Uint8Array, offset: number, output: Uint8Array): [offsetAfter, produced, hint]
  // hint is ZSTD_decompressStream's return: 0 once a frame is complete and fully flushed.
  Napi::Value Decompress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (dctx_ == nullptr) return ThrowCoded(env, "zstd decoder is closed", "ERR_ZSTD_CLOSED");
    sbx::decoder::Args a;
    if (!sbx::decoder::ReadArgs(info, UINT64_MAX, a)) return env.Undefined();
    Napi::Uint8Array input = a.input, output = a.output;
    ZSTD_inBuffer in = {input.Data(), input.ByteLength(), a.offset};
    ZSTD_outBuffer out = {output.Data(), output.ByteLength(), 0};
    size_t rc = ZSTD_decompressStream(dctx_, &out, &in);
    if (ZSTD_isError(rc)) return ThrowError(env, rc);
    if (!TrackFrame(input.Data() + a.offset, in.pos - a.offset, out.pos, rc)) {
      return ThrowCoded(env, "invalid zstd data: the frame holds " + std::to_string(frame_produced_) +
                                 " bytes, its header declares " + std::to_string(frame_declared_),
                        "Z_DATA_ERROR");
    }
    Napi::Array result = Napi::Array::New(env, 3);
    result.Set(0u, Napi::Number::New(env, static_cast<double>(in.pos)));
    result.Set(1u, Napi::Number::New(env, static_cast<double>(out.pos)));
    result.Set(2u, Napi::Number::New(env, static_cast<double>(rc)));
    return result;
  }

  // Checks each frame's content against the size its header declares. libzstd checks it itself
  // except when a frame ends with an empty last block that arrives apart from the frame's start
  // (1.5.4: ZSTD_decompressContinue skips the check on that path): the same bytes were refused when
  // fed whole and accepted, short, when cut into small chunks. `read` bytes at `consumed` were just
  // read, `written` bytes produced; `rc` is ZSTD_decompressStream's hint (0: the frame is over).
  // Returns false when a frame ended with another size than it declared (frame_* then say which).
  bool TrackFrame(const uint8_t* consumed, size_t read, size_t written, size_t rc) {
    if (!header_known_) {
      size_t take = std::min(read, sizeof header_ - header_len_);
      std::memcpy(header_ + header_len_, consumed, take);
      header_len_ += take;
      ZSTD_frameHeader zfh;
      if (ZSTD_getFrameHeader(&zfh, header_, header_len_) == 0) {
        header_known_ = true;
        frame_declared_ = zfh.frameType == ZSTD_frame ? zfh.frameContentSize : ZSTD_CONTENTSIZE_UNKNOWN;
      }
    }
    frame_produced_ += written;
    if (rc != 0) return true;
    const bool ok = !header_known_ || frame_declared_ == ZSTD_CONTENTSIZE_UNKNOWN || frame_declared_ == frame_produced_;
    if (ok) {  // the next frame starts with the next byte read
      header_known_ = false;
      header_len_ = 0;
      frame_produced_ = 0;
    }
    return ok;
  }

  Napi::Value ThrowError(Napi::Env env, size_t rc) {
    ZSTD_ErrorCode code = ZSTD_getErrorCode(rc);
    if (code == ZSTD_error_frameParameter_windowTooLarge) {
      unsigned long long mib = (1ull << window_log_max_) >> 20;
      return ThrowCoded(env, "zstd window larger than " + std::to_string(mib) + " MiB", "ERR_ZSTD_WINDOW_TOO_LARGE");
    }
    if (code == ZSTD_error_prefix_unknown) return ThrowCoded(env, "not zstd data (unknown frame magic number)", "Z_DATA_ERROR");
    return ThrowCoded(env, std::string("invalid zstd data: ") + ZSTD_getErrorName(rc), "Z_DATA_ERROR");
  }

  // Frees the context (and its window) now rather than at garbage collection.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Free();
    return info.Env().Undefined();
  }

  ZSTD_DCtx* dctx_ = nullptr;
  int window_log_max_ = 27;
  // The current frame (TrackFrame): its first bytes until its header could be read, the content
  // size it declares (ZSTD_CONTENTSIZE_UNKNOWN when it declares none) and what it produced so far.
  uint8_t header_[ZSTD_FRAMEHEADERSIZE_MAX] = {};
  size_t header_len_ = 0;
  bool header_known_ = false;
  unsigned long long frame_declared_ = ZSTD_CONTENTSIZE_UNKNOWN;
  unsigned long long frame_produced_ = 0;
};

Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  exports.Set("ZstdDecoder", ZstdDecoder::Define(env));
  exports.Set("GzipDecoder", sbx::gzip::DefineDecoder(env));
  exports.Set("zstdVersion", Napi::String::New(env, ZSTD_versionString()));
  ZSTD_bounds bounds = ZSTD_dParam_getBounds(ZSTD_d_windowLogMax);
  exports.Set("windowLogMaxUpperBound", Napi::Number::New(env, bounds.upperBound));
  return exports;
}

}  // namespace

NODE_API_MODULE(sbx_zstd, InitAll)
