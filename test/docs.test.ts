/**
 * The docs show compiled code and link to files that exist: every ```ts block of README.md and docs/*.md
 * is the text of a file under examples/ (which `npm run typecheck` compiles), and every relative link
 * points to a file or folder of the repository.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"

const root = fileURLToPath(new URL("..", import.meta.url))

/** Blocks a document must show (the README's install examples and walk). */
const required: Readonly<Record<string, ReadonlyArray<string>>> = {
  "README.md": [
    "examples/install/sqlite.ts",
    "examples/install/postgres.ts",
    "examples/install/postgresNatsOtel.ts",
    "examples/walkthrough.ts"
  ]
}

const documents = [
  "README.md",
  ...readdirSync(path.join(root, "docs"))
    .filter((name) => name.endsWith(".md"))
    .sort()
    .map((name) => `docs/${name}`)
]

const filesUnder = (dir: string): ReadonlyArray<string> =>
  readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? filesUnder(`${dir}/${entry.name}`)
      : entry.name.endsWith(".ts")
        ? [`${dir}/${entry.name}`]
        : []
  )

/** Every examples/ file by its trimmed text. */
const examples = new Map(filesUnder("examples").map((file) => [read(file).trim(), file]))

function read(file: string): string {
  return readFileSync(path.join(root, file), "utf8")
}

const fence = /^```(\S*)\n([\s\S]*?)^```$/gm

/** The document's fenced blocks: language, text and line. */
const blocksOf = (text: string) =>
  [...text.matchAll(fence)].map((match) => ({
    language: match[1]!,
    code: match[2]!,
    line: text.slice(0, match.index).split("\n").length
  }))

/** Relative link targets outside code, with their line. */
const linksOf = (text: string) => {
  const prose = text.replace(fence, (block) => block.replace(/[^\n]/g, " ")).replace(/`[^`\n]*`/g, "")
  return [...prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)]
    .map((match) => ({ target: match[1]!, line: prose.slice(0, match.index).split("\n").length }))
    .filter(({ target }) => !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith("#"))
}

describe("docs", () => {
  it("finds the documents and the examples", () => {
    assert.include(documents, "docs/README.md")
    assert.isAbove(examples.size, 5)
  })

  for (const document of documents) {
    it.effect(`${document}: every ts block is the text of an examples/ file (so it is type-checked)`, () =>
      Effect.sync(() => {
        const strays = blocksOf(read(document))
          .filter((block) => block.language === "ts" && !examples.has(block.code.trim()))
          .map(
            (block) => `${document}:${block.line}: a ts block that is no examples/ file: ${block.code.split("\n")[0]}`
          )
        assert.deepStrictEqual(strays, [])
      })
    )

    it.effect(`${document}: every relative link points to a file that exists`, () =>
      Effect.sync(() => {
        const broken = linksOf(read(document))
          .map(({ line, target }) => ({
            line,
            target,
            resolved: path.relative(root, path.resolve(path.dirname(path.join(root, document)), target.split("#")[0]!))
          }))
          .filter(({ resolved }) => !existsSync(path.join(root, resolved)))
          .map(({ line, target }) => `${document}:${line}: ${target} does not exist`)
        assert.deepStrictEqual(broken, [])
      })
    )
  }

  for (const [document, files] of Object.entries(required)) {
    it.effect(`${document} shows ${files.join(", ")}`, () =>
      Effect.sync(() => {
        const shown = new Set(blocksOf(read(document)).map((block) => examples.get(block.code.trim())))
        assert.deepStrictEqual(
          files.filter((file) => !shown.has(file)),
          []
        )
      })
    )
  }

  it.effect("the checks catch a stray block and a broken link", () =>
    Effect.sync(() => {
      const sample = "See [a guide](docs/nowhere.md) and `[not a link](x.md)`.\n\n```ts\nconst x = 1\n```\n"
      assert.deepStrictEqual(
        blocksOf(sample).map((block) => examples.has(block.code.trim())),
        [false]
      )
      assert.deepStrictEqual(
        linksOf(sample).map((link) => link.target),
        ["docs/nowhere.md"]
      )
    })
  )
})
