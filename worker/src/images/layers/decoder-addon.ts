/**
 * The sbx_zstd addon (native/src/zstd_stream.cc over the reference libzstd, gzip_stream.cc over the
 * zlib Node exports; Node 20's zlib has no zstd): the native decoders layer-decoder.ts drives. Each
 * decompress() call reads from input[offset..] and writes at most output.length bytes, so the
 * caller bounds every step however far the data expands. The zstd window is capped at 2^27 bytes
 * (zstd's own default limit: a frame asking for more fails "zstd window larger than 128 MiB").
 */
import { createRequire } from 'node:module';

/** zstd's own default limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT): windows of up to 128 MiB. */
export const ZSTD_WINDOW_LOG_MAX = 27;

export interface NativeZstdDecoder {
  /** One ZSTD_decompressStream call: [input offset after, bytes produced, hint (0 = frame complete)]. */
  decompress(input: Uint8Array, offset: number, output: Uint8Array): [number, number, number];
  close(): void;
}

export interface NativeGzipDecoder {
  /** inflate() until the output is full or the input used up: [input offset after, bytes produced]. */
  decompress(input: Uint8Array, offset: number, output: Uint8Array): [number, number];
  /** Throws if the data ended inside a gzip member. */
  finish(): void;
  close(): void;
}

interface DecoderAddon {
  ZstdDecoder: new (windowLogMax: number) => NativeZstdDecoder;
  GzipDecoder: new (checkTrailer?: boolean) => NativeGzipDecoder;
  zstdVersion: string;
}

let addon: DecoderAddon | undefined;

/** The addon, loaded once per thread (it is context-aware: unpack worker threads load it too). */
export function decoderAddon(): DecoderAddon {
  addon ??= createRequire(import.meta.url)(new URL('../../../../native/build/Release/sbx_zstd.node', import.meta.url).pathname) as DecoderAddon;
  return addon;
}
