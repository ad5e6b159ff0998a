/**
 * Orderings for ids, addresses and names that do not go through ICU. The first
 * String.prototype.localeCompare (or Intl.Collator) of a process loads ICU's collation data:
 * 7–20 ms of every short verb's start-up here, for strings (hex ids, host:port, context
 * names) that need no linguistic order.
 */

/** Code-unit order: "A" < "B" < "a", "node-10" < "node-2". */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

const DIGIT_RUNS = /(\d+)/

/** Runs of digits compared as numbers, the rest as text: "10.0.0.2:7002" < "10.0.0.10:7002", "…:7002" < "…:7010". */
export function compareNatural(a: string, b: string): number {
  if (a === b) return 0
  const left = a.split(DIGIT_RUNS)
  const right = b.split(DIGIT_RUNS)
  const parts = Math.min(left.length, right.length)
  // split() with a capturing group alternates text (even indices) and digit runs (odd ones)
  for (let i = 0; i < parts; i++) {
    const order = i % 2 === 1 ? compareDigits(left[i], right[i]) : compareText(left[i], right[i])
    if (order !== 0) return order
  }
  return left.length - right.length || compareText(a, b)
}

/** Two runs of digits as the numbers they spell, however long ("007" equals "7", ties broken by the text). */
function compareDigits(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, '')
  const y = b.replace(/^0+(?=\d)/, '')
  return x.length - y.length || compareText(x, y)
}
