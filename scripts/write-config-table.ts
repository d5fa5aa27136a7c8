// Regenerates what is generated from the config schema: the configuration table in
// README.md, and the worker config keys the Helm chart's values.schema.json accepts.
import { readFile, writeFile } from 'node:fs/promises'
import { withChartConfigKeys, withConfigTable } from '@pharos/beacon/config/docs.ts'

const readme = new URL('../README.md', import.meta.url)
await writeFile(readme, withConfigTable(await readFile(readme, 'utf8')))
console.log('README.md configuration table updated')
const valuesSchema = new URL('../helm/pharos/values.schema.json', import.meta.url)
await writeFile(valuesSchema, withChartConfigKeys(await readFile(valuesSchema, 'utf8')))
console.log('helm/pharos/values.schema.json config keys updated')
