/**
 * The shape of `src/` (DESIGN.md section 2): no runtime import cycle (type-only imports are erased, so
 * they may go both ways; a value import that closes a loop makes module initialization order matter), a
 * SQL dialect chosen in one place, and driver error codes read only in the SQL and backend folders.
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import ts from "typescript"

const src = fileURLToPath(new URL("../src", import.meta.url))

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name)
    return statSync(file).isDirectory() ? sourceFiles(file) : file.endsWith(".ts") ? [file] : []
  })

/** The project files `file` imports at run time (its relative imports and re-exports that are not type-only). */
export const runtimeImports = (file: string, text: string): Array<string> => {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false)
  const targets: Array<string> = []
  for (const statement of source.statements) {
    let specifier: ts.Expression | undefined
    if (ts.isImportDeclaration(statement)) {
      const clause = statement.importClause
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            clause.namedBindings !== undefined &&
            ts.isNamedImports(clause.namedBindings) &&
            clause.namedBindings.elements.length > 0 &&
            clause.namedBindings.elements.every((element) => element.isTypeOnly)))
      if (!typeOnly) specifier = statement.moduleSpecifier
    } else if (ts.isExportDeclaration(statement) && !statement.isTypeOnly) {
      specifier = statement.moduleSpecifier
    }
    if (specifier !== undefined && ts.isStringLiteral(specifier) && specifier.text.startsWith(".")) {
      targets.push(path.resolve(path.dirname(file), specifier.text.replace(/\.js$/, ".ts")))
    }
  }
  return targets
}

/** Every cycle found by a depth-first walk, as the chain of files (relative to `src/`) that closes it. */
const cycles = (graph: ReadonlyMap<string, ReadonlyArray<string>>): Array<string> => {
  const found: Array<string> = []
  const state = new Map<string, "open" | "done">()
  const stack: Array<string> = []
  const visit = (file: string) => {
    state.set(file, "open")
    stack.push(file)
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "open") {
        found.push([...stack.slice(stack.indexOf(next)), next].map((f) => path.relative(src, f)).join(" -> "))
      } else if (!state.has(next)) visit(next)
    }
    stack.pop()
    state.set(file, "done")
  }
  for (const file of graph.keys()) if (!state.has(file)) visit(file)
  return found
}

/** The files (relative to `src/`) whose text matches `pattern`, outside the folders given. */
const filesMatching = (pattern: RegExp, outside: ReadonlyArray<string>): Array<string> =>
  sourceFiles(src)
    .map((file) => path.relative(src, file))
    .filter((file) => !outside.some((folder) => file.startsWith(folder + path.sep)))
    .filter((file) => pattern.test(readFileSync(path.join(src, file), "utf8")))
    .sort()

const backendFolders = ["pg", "sqlite", "mysql"]

describe("src/ architecture", () => {
  it("chooses the SQL dialect in one place: the backends' records hold what differs", () => {
    assert.deepStrictEqual(filesMatching(/onDialect/, backendFolders), [path.join("sql", "internal", "dialect.ts")])
  })

  it("reads driver error codes only in the SQL and backend folders", () => {
    const driverCodes = /SQLITE_|errno|sqlState|SQLSTATE|"[0-9A-Z]{2}[0-9A-Z]{3}"|25P02|40P01|40001/
    assert.deepStrictEqual(filesMatching(driverCodes, ["sql", "nats", ...backendFolders]), [])
    // the check sees them where they are
    assert.include(filesMatching(driverCodes, []), path.join("sql", "classify.ts"))
  })

  it("has no runtime import cycle", () => {
    const graph = new Map(sourceFiles(src).map((file) => [file, runtimeImports(file, readFileSync(file, "utf8"))]))
    assert.isAbove(graph.size, 30)
    assert.deepStrictEqual(cycles(graph), [])
  })

  it("the check sees value imports and re-exports, and ignores type-only ones", () => {
    const file = path.join(src, "A.ts")
    const imports = runtimeImports(
      file,
      [
        `import * as B from "./B.js"`,
        `import { type C } from "./C.js"`,
        `import type { D } from "./D.js"`,
        `import { type E, e } from "./E.js"`,
        `export * from "./F.js"`,
        `export type { G } from "./G.js"`,
        `import * as Effect from "effect/Effect"`
      ].join("\n")
    )
    assert.deepStrictEqual(
      imports.map((f) => path.basename(f)),
      ["B.ts", "E.ts", "F.ts"]
    )
    const loop = new Map([
      [file, [path.join(src, "B.ts")]],
      [path.join(src, "B.ts"), [file]]
    ])
    assert.deepStrictEqual(cycles(loop), ["A.ts -> B.ts -> A.ts"])
  })
})
