// moved to core/result.ts; shim kept for branches in flight, removed after merge
export * from '../core/result.js'
