/**
 * The sbx client: `new SbxClient({ baseUrl, apiKey })`, typed methods for every endpoint, errors
 * typed by the API's codes, and `events(id)` that resumes across dropped connections.
 * Depends on undici only (and core's types, erased at build).
 */
export { SbxClient, type ClientOptions, type SubmitOptions, type WaitOptions } from './client.ts';
export type { EventsOptions } from './job-events.ts';
export * from './errors.ts';
export * from './types.ts';
export { parseServerSentEvents, type ServerSentEvent } from './sse.ts';
export { normalizeImageName } from './image-name.ts';
export { attachJob, type Attachment, type AttachOptions } from './attach.ts';
export { checkReceipt, type ReceiptCheck, type ReceiptKey, type ReceiptPayload, type TrustedKey } from './receipt.ts';
