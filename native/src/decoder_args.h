// What the sbx_zstd addon's two decoders (zstd_stream.cc, gzip_stream.cc) share: errors with a
// stable `code`, and the checked arguments of decompress(input, offset, output).
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

namespace sbx::decoder {

inline Napi::Value ThrowCoded(Napi::Env env, const std::string& message, const char* code) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
}

struct Args {
  Napi::Uint8Array input, output;
  size_t offset = 0;
};

// decompress(input: Uint8Array, offset: number, output: Uint8Array), offset within input and both
// at most maxBytes long; false (a JS exception pending) otherwise.
inline bool ReadArgs(const Napi::CallbackInfo& info, uint64_t maxBytes, Args& a) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsNumber() || !info[2].IsTypedArray()) {
    Napi::TypeError::New(env, "decompress(input: Uint8Array, offset: number, output: Uint8Array)").ThrowAsJavaScriptException();
    return false;
  }
  a.input = info[0].As<Napi::Uint8Array>();
  a.output = info[2].As<Napi::Uint8Array>();
  int64_t offset = info[1].As<Napi::Number>().Int64Value();
  if (a.input.TypedArrayType() != napi_uint8_array || a.output.TypedArrayType() != napi_uint8_array || offset < 0 ||
      static_cast<uint64_t>(offset) > a.input.ByteLength() || a.input.ByteLength() > maxBytes || a.output.ByteLength() > maxBytes) {
    Napi::RangeError::New(env, "decompress: bad arguments").ThrowAsJavaScriptException();
    return false;
  }
  a.offset = static_cast<size_t>(offset);
  return true;
}

}  // namespace sbx::decoder
