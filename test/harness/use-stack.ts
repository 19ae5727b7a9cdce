/**
 * The usual setup of an end-to-end test file in one line: a whole stack (startStack) started in
 * before() and stopped in after(), with the API client the tests talk through.
 *
 *   const e2e = useStack({ workers: 0 });
 *   test('…', async () => { await e2e.api.submit(…); e2e.stack.images.busybox; });
 */
import { after, before } from 'node:test';
import { SbxClient } from './api-client.ts';
import { startStack, type Stack } from './stack.ts';

export type StackOptions = NonNullable<Parameters<typeof startStack>[0]>;

export interface StackUnderTest {
  /** The running stack (only inside tests and hooks: it starts in before()). */
  readonly stack: Stack;
  /** A client of its API (with `apiKey`, if given). */
  readonly api: SbxClient;
}

/**
 * `then` runs inside the same before() once the stack is up: a file's own top-level before() hooks
 * may run concurrently with this one (Node 20's test runner starts root hooks together), so setup
 * that needs the stack goes here.
 */
export function useStack(opts: StackOptions = {}, extra: { apiKey?: string; then?: (e2e: StackUnderTest) => Promise<void> | void } = {}): StackUnderTest {
  let stack: Stack | null = null;
  let api: SbxClient | null = null;
  before(async () => {
    stack = await startStack(opts);
    api = new SbxClient(stack.apiUrl, extra.apiKey);
    await extra.then?.(handle);
  });
  after(async () => {
    await stack?.stop();
  });
  const started = <T>(v: T | null): T => {
    if (v === null) throw new Error('the stack is not started yet: use it inside a test or a hook after useStack()');
    return v;
  };
  const handle: StackUnderTest = {
    get stack() {
      return started(stack);
    },
    get api() {
      return started(api);
    },
  };
  return handle;
}
