/**
 * Waits until `condition()` is true, checking every `everyMs`; fails with `what` after `limitMs`.
 * A bounded wait for things that happen on real I/O (file watchers, sockets), not a timing assertion.
 */
export async function waitUntil(condition: () => boolean, what: string, limitMs = 5000, everyMs = 10): Promise<void> {
  const giveUpAt = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > giveUpAt) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
