import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { main } from "../examples/quickstart.js"

describe("examples", () => {
  it.effect("the README's quick start is examples/quickstart.ts, verbatim", () =>
    Effect.sync(() => {
      const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
      const source = readFileSync(new URL("../examples/quickstart.ts", import.meta.url), "utf8")
      assert.include(readme, "```ts\n" + source.trim() + "\n```")
    })
  )

  it.effect("the quick start runs", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* main, 2)
    })
  )
})
