// moved to core/escape.ts; shim kept for branches in flight, removed after merge
export * from '../core/escape.js'
