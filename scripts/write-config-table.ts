// Regenerates the configuration table in README.md from the config schema.
import { readFile, writeFile } from 'node:fs/promises'
import { withConfigTable } from '../services/beacon/src/config/docs.ts'

const path = new URL('../README.md', import.meta.url)
await writeFile(path, withConfigTable(await readFile(path, 'utf8')))
console.log('README.md configuration table updated')
