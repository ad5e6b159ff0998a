/**
 * A binary min-heap under a comparator: planners pick "the master furthest below its target"
 * thousands of times, and re-sorting every master for each pick is quadratic on large
 * clusters.
 */
export class Heap<T> {
  private readonly items: T[] = []

  constructor(
    private readonly before: (a: T, b: T) => number,
    items: Iterable<T> = [],
  ) {
    for (const item of items) this.push(item)
  }

  get size(): number {
    return this.items.length
  }

  peek(): T | undefined {
    return this.items[0]
  }

  push(item: T): void {
    const items = this.items
    items.push(item)
    let index = items.length - 1
    while (index > 0) {
      const parent = (index - 1) >> 1
      if (this.before(items[index], items[parent]) >= 0) break
      ;[items[index], items[parent]] = [items[parent], items[index]]
      index = parent
    }
  }

  pop(): T | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (items.length === 0 || last === undefined) return top
    items[0] = last
    let index = 0
    for (;;) {
      const left = index * 2 + 1
      const right = left + 1
      let smallest = index
      if (left < items.length && this.before(items[left], items[smallest]) < 0) smallest = left
      if (right < items.length && this.before(items[right], items[smallest]) < 0) smallest = right
      if (smallest === index) return top
      ;[items[index], items[smallest]] = [items[smallest], items[index]]
      index = smallest
    }
  }
}
