// sbx_zstd addon, gzip half: see gzip_stream.cc.
#pragma once
#include <napi.h>

namespace sbx::gzip {

// The GzipDecoder class, for the addon's exports.
Napi::Function DefineDecoder(Napi::Env env);

}  // namespace sbx::gzip
