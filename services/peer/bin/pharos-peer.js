#!/usr/bin/env node
// Entry point for `npx pharos-peer`. The CLI is TypeScript run by Node's type stripping
// (Node >= 22.18); the `node` devDependency puts Node 22 on PATH for npm scripts and npx.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(`pharos-peer needs Node >= 22.19 (this is ${process.version}); run it through npm (npx pharos-peer), which uses the node@22 devDependency\n`)
  process.exit(1)
}
const { runCli } = await import('../src/cli.ts')
process.exitCode = await runCli(process.argv.slice(2))
