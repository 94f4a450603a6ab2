/**
 * Runs `fn` over `items`, at most `limit` at a time. After the first failure no
 * new item starts, but the ones under way are waited for, so none finishes (and,
 * say, leaves a temporary file) after the caller has cleaned up; then the first
 * failure is thrown.
 */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failure) {
      const i = next++;
      try {
        await fn(items[i] as T, i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
}
