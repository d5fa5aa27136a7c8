#!/usr/bin/env node
// Entry point for `npx pharos-beacon`. The worker is TypeScript run by Node's type
// stripping (Node >= 22.18); the `node` devDependency puts Node 22 on PATH for npm scripts
// and npx, and the Docker image uses a Node 22 base.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(`pharos-beacon needs Node >= 22.19 (this is ${process.version}); run it through npm (npx pharos-beacon / npm start), which uses the node@22 devDependency\n`)
  process.exit(1)
}
await import('../src/main.ts')
