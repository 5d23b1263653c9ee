// ESLint (flat config): the recommended JavaScript and TypeScript rules, Effect's import rule, and the
// house style's bans in src/ (STYLE.md: no async/await, try/catch, Date.now(), new Date(), Math.random()
// or console; use Effect.tryPromise, Clock, Random and Effect.log). Formatting is Prettier's.
import js from "@eslint/js"
import effect from "@effect/eslint-plugin"
import { defineConfig } from "eslint/config"
import tseslint from "typescript-eslint"

const houseStyle = [
  {
    selector: "FunctionDeclaration[async=true], ArrowFunctionExpression[async=true], FunctionExpression[async=true]",
    message: "no async functions in src/: use Effect (Effect.tryPromise for a promise)"
  },
  { selector: "AwaitExpression", message: "no await in src/: use Effect" },
  { selector: "TryStatement", message: "no try/catch in src/: use Effect.try or Effect.catch*" },
  {
    selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']",
    message: "no Date.now() in src/: use Clock"
  },
  { selector: "NewExpression[callee.name='Date']", message: "no new Date() in src/: use Clock or DateTime" },
  {
    selector: "CallExpression[callee.object.name='Math'][callee.property.name='random']",
    message: "no Math.random() in src/: use Random"
  },
  { selector: "MemberExpression[object.name='console']", message: "no console in src/: use Effect.log" }
]

export default defineConfig(
  { ignores: ["dist/", "node_modules/", "bench/results/", "docs/api/", "coverage/"] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    plugins: { "@effect": effect },
    rules: {
      // deep imports (`effect/Effect`), which bundlers tree-shake, rather than the barrel
      "@effect/no-import-from-barrel-package": [
        "error",
        { packageNames: ["effect", "@effect/sql", "@effect/platform"] }
      ],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      // `Schema.Schema<any, any, any>` and `Layer.Layer<any, any, infer R>` are how Effect code states "any
      // schema" in constraints and conditional types, where `unknown` would not match
      "@typescript-eslint/no-explicit-any": "off",
      // input validation matches control characters on purpose
      "no-control-regex": "off"
    }
  },
  { files: ["src/**/*.ts"], rules: { "no-restricted-syntax": ["error", ...houseStyle] } },
  {
    // the console page's script runs in the browser
    files: ["src/http/assets/*.js"],
    languageOptions: {
      sourceType: "script",
      globals: Object.fromEntries(
        [
          "location",
          "document",
          "fetch",
          "URLSearchParams",
          "EventSource",
          "setInterval",
          "clearInterval",
          "Promise",
          "Date"
        ].map((name) => [name, "readonly"])
      )
    }
  }
)
