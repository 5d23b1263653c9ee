/**
 * The package as its users get it: `npm pack`, then fresh projects in a temporary directory that install
 * the tarball with only what one kind of user needs, type-check the README's install example against the
 * installed declarations (no `skipLibCheck`), compile it and run the built JavaScript with node.
 *
 * - `sqlite`: the embedded store only. Its `node_modules` must hold no PostgreSQL, MySQL, NATS or
 *   OpenTelemetry package (checked), and its size is printed.
 * - `postgres`: the PostgreSQL store, and the CLI (the package's bin) on its tables.
 * - `postgres-nats-otel`: PostgreSQL, the outbox relay to NATS JetStream and OpenTelemetry export.
 * - `effect-4`: an application on Effect 4 is refused at install by npm's peer-dependency check.
 *
 * Run by `.ci/run` (`npm run test:package`) after the unit tests; needs the registry (or npm's cache) and
 * the local PostgreSQL and NATS servers (`PG_URL`, `NATS_URL`). `--keep` leaves the projects in place.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))
const manifest = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as {
  readonly devDependencies: Record<string, string>
  readonly peerDependencies: Record<string, string>
}
const pgUrl = process.env.PG_URL ?? "postgres://root@127.0.0.1:5432/test"
const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222"

interface Consumer {
  readonly name: string
  /** What the user installs beside the package (versions: the ones the tests run on). */
  readonly installs: ReadonlyArray<string>
  /** The README's install example, from `examples/install/`. */
  readonly example: string
  readonly expect: RegExp
  /** Packages this user must not get. */
  readonly absent?: RegExp
  /**
   * Whether the project type-checks with `exactOptionalPropertyTypes` (every one does with `strict` and no
   * `skipLibCheck`; nats.js's own declarations do not pass that option).
   */
  readonly exactOptionalPropertyTypes: boolean
  /** Arguments of the package's bin to run after the example (it must exit 0 and print that nothing is pending). */
  readonly cli?: ReadonlyArray<string>
}

const core = ["effect", "@effect/sql", "@effect/experimental"]
const postgres = [...core, "@effect/sql-pg", "pg", "@types/pg"]

const consumers: ReadonlyArray<Consumer> = [
  {
    name: "sqlite",
    installs: [...core, "@effect/sql-sqlite-node", "better-sqlite3"],
    example: "sqlite",
    expect: /^Account at version 2$/m,
    absent:
      /^(pg|pg-.+|@types\/pg|@effect\/sql-pg|mysql2|@effect\/sql-mysql2|@nats-io\/.+|@opentelemetry\/.+|@effect\/opentelemetry)$/,
    exactOptionalPropertyTypes: true
  },
  {
    name: "postgres",
    // and the CLI: its bin is run once the example has made the tables
    installs: [
      ...postgres,
      "@effect/cli",
      "@effect/printer",
      "@effect/printer-ansi",
      "@effect/platform",
      "@effect/platform-node"
    ],
    example: "postgres",
    expect: /^Account at version 2$/m,
    exactOptionalPropertyTypes: true,
    cli: ["migrate", "status", "--url", pgUrl, "--schema", "quickstart"]
  },
  {
    name: "postgres-nats-otel",
    installs: [
      ...postgres,
      "@nats-io/transport-node",
      "@nats-io/jetstream",
      "@effect/platform",
      "@effect/opentelemetry",
      "@opentelemetry/api",
      "@opentelemetry/sdk-trace-base"
    ],
    example: "postgresNatsOtel",
    expect: /^Account at version 2, published$/m,
    exactOptionalPropertyTypes: false
  }
]

const run = (command: string, args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv = {}) => {
  const result = spawnSync(command, args, { cwd, encoding: "utf8", env: { ...process.env, ...env } })
  return { status: result.status, output: `${result.stdout ?? ""}${result.stderr ?? ""}` }
}

const must = (what: string, result: { readonly status: number | null; readonly output: string }) => {
  if (result.status !== 0) throw new Error(`${what} failed (exit ${result.status}):\n${result.output}`)
  return result.output
}

/** Every installed package name under `node_modules` (scoped ones as `@scope/name`). */
const installed = (modules: string): Array<string> =>
  fs.existsSync(modules)
    ? fs.readdirSync(modules).flatMap((entry) => {
        if (entry.startsWith(".")) return []
        if (entry.startsWith("@")) return fs.readdirSync(path.join(modules, entry)).map((name) => `${entry}/${name}`)
        return [entry]
      })
    : []

const sizeOf = (dir: string): number =>
  fs.readdirSync(dir, { withFileTypes: true }).reduce((bytes, entry) => {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) return bytes + sizeOf(file)
    return entry.isFile() ? bytes + fs.statSync(file).size : bytes
  }, 0)

const versionOf = (name: string): string => {
  const version = manifest.peerDependencies[name] ?? manifest.devDependencies[name]
  if (version === undefined) throw new Error(`package.json names no version of ${name}`)
  return version
}

const project = (dir: string, dependencies: Record<string, string>, exactOptionalPropertyTypes = true) => {
  fs.mkdirSync(path.join(dir, "src"), { recursive: true })
  const packageJson = {
    name: `consumer-${path.basename(dir)}`,
    private: true,
    type: "module",
    dependencies,
    devDependencies: { typescript: versionOf("typescript"), "@types/node": versionOf("@types/node") },
    // better-sqlite3 builds its native module at install
    allowScripts: { "better-sqlite3": true }
  }
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify(packageJson, null, 2))
  const tsconfig = {
    compilerOptions: {
      target: "ES2022",
      lib: ["ES2023"],
      module: "NodeNext",
      moduleResolution: "NodeNext",
      types: ["node"],
      strict: true,
      exactOptionalPropertyTypes,
      skipLibCheck: false,
      outDir: "dist",
      rootDir: "src"
    },
    include: ["src"]
  }
  fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2))
}

/** Drops the `quickstart` schema the PostgreSQL install examples write to (a node script, run from the repository). */
const dropQuickstart = `import pg from "pg"
const client = new pg.Client(${JSON.stringify(pgUrl)})
await client.connect()
await client.query("drop schema if exists quickstart cascade")
await client.end()`

const main = () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "effect-eventsourcing-consumers-"))
  const keep = process.argv.includes("--keep")
  try {
    must("npm run build", run("npm", ["run", "build"], root))
    const packed = must("npm pack", run("npm", ["pack", "--pack-destination", work, "--silent"], root)).trim()
    const tarball = path.join(work, packed.split("\n").pop()!)
    console.log(`packed ${path.basename(tarball)} (${Math.round(fs.statSync(tarball).size / 1024)} KiB)`)

    // the PostgreSQL examples' schema lives in the shared database: each run starts without it, so that the
    // migration status checked below is this build's, not an earlier run's
    must("drop schema quickstart", run("node", ["--input-type=module", "-e", dropQuickstart], root))
    for (const consumer of consumers) {
      const dir = path.join(work, consumer.name)
      project(
        dir,
        {
          "effect-eventsourcing": `file:${tarball}`,
          ...Object.fromEntries(consumer.installs.map((name) => [name, versionOf(name)]))
        },
        consumer.exactOptionalPropertyTypes
      )
      for (const file of ["account.ts", `${consumer.example}.ts`]) {
        fs.copyFileSync(path.join(root, "examples", "install", file), path.join(dir, "src", file))
      }
      must(`${consumer.name}: npm install`, run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], dir))
      must(`${consumer.name}: tsc`, run("npx", ["tsc", "-p", "."], dir))
      const output = must(
        `${consumer.name}: node dist/${consumer.example}.js`,
        run("node", [`dist/${consumer.example}.js`], dir, { PG_URL: pgUrl, NATS_URL: natsUrl })
      )
      if (!consumer.expect.test(output)) {
        throw new Error(`${consumer.name}: expected output ${consumer.expect}, got:\n${output}`)
      }
      if (consumer.cli !== undefined) {
        const status = must(
          `${consumer.name}: npx effect-eventsourcing`,
          run("npx", ["effect-eventsourcing", ...consumer.cli], dir)
        )
        if (!/^events\s+1_baseline\s+-$/m.test(status)) {
          throw new Error(`${consumer.name}: unexpected migrate status:\n${status}`)
        }
      }
      const packages = installed(path.join(dir, "node_modules"))
      const unwanted = consumer.absent === undefined ? [] : packages.filter((name) => consumer.absent!.test(name))
      if (unwanted.length > 0) throw new Error(`${consumer.name}: installed ${unwanted.join(", ")}`)
      const megabytes = (sizeOf(path.join(dir, "node_modules")) / 1024 / 1024).toFixed(1)
      console.log(`${consumer.name}: ok (${packages.length} packages, ${megabytes} MB in node_modules)`)
    }

    // an application already on Effect 4: npm refuses the package at install, naming the peer range
    const effect4 = path.join(work, "effect-4")
    project(effect4, { effect: "^4.0.0", "effect-eventsourcing": `file:${tarball}` })
    const refused = run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], effect4)
    if (
      refused.status === 0 ||
      !/ERESOLVE/.test(refused.output) ||
      !refused.output.includes(`peer effect@"${versionOf("effect")}"`)
    ) {
      throw new Error(`effect-4: expected npm to refuse the install (ERESOLVE, peer effect), got:\n${refused.output}`)
    }
    console.log("effect-4: refused at install (ERESOLVE: peer effect)")
  } finally {
    if (keep) console.log(`projects kept in ${work}`)
    else fs.rmSync(work, { recursive: true, force: true })
  }
}

main()
