/** Freezes a value and everything inside it (the config, handler options). */
export function deepFreeze<T>(value: T): T {
  // Typed arrays (token digests) cannot be frozen; nothing writes to them.
  if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value) && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
