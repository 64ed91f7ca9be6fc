// Numbers are kept exactly: the shared table (tests/data/numbers.json, the same for every SDK)
// through a real plugin process, the request view on its own, and the JSON reader and writer
// (json.ts) against JSON.parse and JSON.stringify.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import {
  LosslessNumber,
  ToolCall,
  isLosslessNumber,
  parseJson,
  rewrite,
  session,
  stringifyJson,
} from "../src";
import { Clients, spawnPlugin } from "./harness";
import type { PluginProcess } from "./harness";

interface NumberCase {
  name: string;
  text: string;
  canonical: string;
}

/** The repository root: this file runs from plugin-sdk/typescript/dist/test/. */
const REPO = path.resolve(__dirname, "..", "..", "..", "..");
const TABLE: NumberCase[] = (
  JSON.parse(fs.readFileSync(path.join(REPO, "tests", "data", "numbers.json"), "utf8")) as {
    numbers: NumberCase[];
  }
).numbers;

/** `"n0":CANONICAL0,"n1":CANONICAL1,...`: the members of the params a plugin receives. */
const MEMBERS = TABLE.map((n, i) => `"n${i}":${n.canonical}`).join(",");
const PARAMS = `{${MEMBERS}}`;

test("the table is there", () => {
  assert.ok(TABLE.length >= 10);
  for (const text of ["-0.0", "12345678901234567890", "1e+400"]) {
    assert.ok(
      TABLE.some((n) => n.canonical === text),
      text,
    );
  }
});

describe("a plugin process", () => {
  let plugin: PluginProcess;
  let clients: Clients;

  before(async () => {
    plugin = spawnPlugin("sample.js");
    clients = new Clients(plugin.socket);
    await clients.ready(plugin);
  });

  after(() => {
    clients.close();
    plugin.kill();
  });

  test("rewrite({ ...call.params, rewritten: true }) returns every number's text", async () => {
    const decision = await clients.beforeToolCall({ tool_name: "rewrite-me", params_json: PARAMS });
    // The whole text: each number exactly as sent, in the order sent, then the added key.
    assert.equal(decision.params_json, `{${MEMBERS},"rewritten":true}`);
  });

  test("session.patch of the metadata it got returns every number's text", async () => {
    const patched = await clients.beforeSessionCreate({
      agent_id: "main",
      session_metadata_json: PARAMS,
    });
    assert.equal(patched.metadata_json, `{"agent":"main","previous":${PARAMS}}`);
  });
});

test("what a plugin author receives", () => {
  const request = {
    tool_name: "x",
    params_json: PARAMS,
    context: null,
    session_metadata_json: "",
    deadline_ms: 0,
  };
  const call = new ToolCall(request, new AbortController().signal);
  const byText = new Map(TABLE.map((n, i) => [n.canonical, call.params[`n${i}`]]));
  // A number JavaScript writes back as the same text stays a number.
  assert.equal(byText.get("42"), 42);
  assert.equal(byText.get("5e-324"), 5e-324);
  // Anything else keeps its text, with the nearest double as its value.
  for (const [text, double] of [
    ["12345678901234567890", 12345678901234567890],
    ["9007199254740993", 9007199254740992],
    ["0.1000000000000000000000000001", 0.1],
    ["-0.0", -0],
    ["-0", -0],
    ["1.50", 1.5],
    ["1e+3", 1000],
    ["1e+400", Infinity],
    ["-1e-400", -0],
  ] as const) {
    const value = byText.get(text);
    assert.ok(value instanceof LosslessNumber, text);
    assert.ok(isLosslessNumber(value), text);
    assert.equal(String(value), text);
    assert.equal(`${value}`, text);
    assert.ok(Object.is(Number(value), double), text);
    assert.ok(Object.is(value.valueOf(), double), text);
  }
  // valueOf makes comparisons and arithmetic work on the double.
  const thousand = byText.get("1e+3") as LosslessNumber;
  assert.ok((thousand as unknown as number) > 999);
  assert.equal((thousand as unknown as number) * 2, 2000);
  // No enumerable own keys: code walking the params finds no strings inside a number.
  assert.deepEqual(Object.keys(thousand), []);
  // JSON.stringify writes the nearest double; the SDK's writer the text.
  assert.equal(JSON.stringify({ n: thousand }), '{"n":1000}');
  assert.equal(rewrite({ n: thousand }).params_json, '{"n":1e+3}');
  assert.equal(session.patch([thousand]).metadata_json, "[1e+3]");
});

test("every number of the table, read and written by the SDK, keeps its text", () => {
  for (const n of TABLE) {
    const value = parseJson(n.canonical);
    assert.equal(rewrite({ n: value }).params_json, `{"n":${n.canonical}}`, n.name);
  }
});

test("a LosslessNumber is made only from a JSON number's text", () => {
  assert.equal(String(new LosslessNumber("12345678901234567890")), "12345678901234567890");
  assert.equal(rewrite({ big: new LosslessNumber("-1.0e-7") }).params_json, '{"big":-1.0e-7}');
  for (const bad of ["", "01", "1.", ".5", "+1", "0x10", "1e", "NaN", "Infinity", " 1", "1 "]) {
    assert.throws(() => new LosslessNumber(bad), TypeError, bad);
  }
  assert.throws(() => new LosslessNumber(1 as unknown as string), TypeError);
});

// parseJson against JSON.parse, and stringifyJson against JSON.stringify: where no number needs
// keeping, they must agree exactly.

const VALID = [
  "{}",
  "[]",
  '""',
  "0",
  "-1",
  "1.5",
  "0.1",
  "1e+21",
  "true",
  "false",
  "null",
  ' \t\r\n{ "a" : [ 1 , 2 , { "b" : null } ] , "c" : "d" } \n',
  '{"a":1,"a":2}',
  '{"__proto__":{"polluted":true},"x":1}',
  '"\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\ud83d\\ude00\\ud800"',
  '"é😀\u2028\u007f"',
  '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]',
  '{"":"","0":0,"10":10,"2":2,"b":"x","a":"y"}',
];

const INVALID = [
  "",
  " ",
  "{",
  "}",
  "[",
  "[1,]",
  "[,1]",
  '{"a":1,}',
  '{"a" 1}',
  "{a:1}",
  "{'a':1}",
  "01",
  "-",
  "1.",
  ".5",
  "+1",
  "1e",
  "1e+",
  "0x10",
  "NaN",
  "Infinity",
  "-Infinity",
  "tru",
  "nul",
  "truex",
  '"abc',
  '"\\x"',
  '"\\u12"',
  '"\\u12g4"',
  '"tab\there"',
  '"new\nline"',
  "[1] [2]",
  "\ufeff{}",
  "{} x",
  "[1 2]",
];

test("parseJson reads what JSON.parse reads, the same way", () => {
  for (const text of VALID) {
    assert.deepStrictEqual(parseJson(text), JSON.parse(text), text);
  }
  const parsed = parseJson('{"__proto__":{"polluted":true}}') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
  assert.deepEqual(Object.keys(parsed), ["__proto__"]);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test("parseJson refuses what JSON.parse refuses, with a SyntaxError", () => {
  for (const text of INVALID) {
    assert.throws(() => JSON.parse(text), SyntaxError, `JSON.parse(${JSON.stringify(text)})`);
    assert.throws(() => parseJson(text), SyntaxError, `parseJson(${JSON.stringify(text)})`);
  }
  assert.throws(() => parseJson("[1,"), /^SyntaxError: Unexpected end of JSON input$/);
  assert.throws(() => parseJson("[1 2]"), /Unexpected token "2" in JSON at position 3/);
});

/** A deterministic stream of numbers in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random JSON value of plain numbers, whose every number JSON.stringify writes as it reads. */
function randomValue(next: () => number, depth: number): unknown {
  const pick = Math.floor(next() * (depth > 3 ? 5 : 7));
  const chars = [...'aé"\\/\b\f\n\r\t\u0000\u001f\u2028😀\ud800 '];
  switch (pick) {
    case 0:
      return null;
    case 1:
      return next() < 0.5;
    case 2:
      return [0, -1, 42, 0.1, 1.5, -2.25e-7, 1e21, 5e-324, Number.MAX_SAFE_INTEGER][
        Math.floor(next() * 9)
      ];
    case 3:
      return (next() - 0.5) * 10 ** Math.floor(next() * 40 - 20);
    case 4:
      return Array.from(
        { length: Math.floor(next() * 6) },
        () => chars[Math.floor(next() * chars.length)],
      ).join("");
    case 5:
      return Array.from({ length: Math.floor(next() * 4) }, () => randomValue(next, depth + 1));
    default: {
      const object: Record<string, unknown> = {};
      for (let i = Math.floor(next() * 4); i > 0; i--) {
        object[String(randomValue(next, 4))] = randomValue(next, depth + 1);
      }
      return object;
    }
  }
}

test("random values: parseJson agrees with JSON.parse, stringifyJson with JSON.stringify", () => {
  const next = random(20260101);
  for (let i = 0; i < 2000; i++) {
    const value = randomValue(next, 0);
    const text = JSON.stringify(value);
    assert.equal(stringifyJson(value), text);
    assert.deepStrictEqual(parseJson(text), JSON.parse(text), text);
  }
});

test("stringifyJson writes what JSON.stringify writes", () => {
  const when = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
  const sparse = [1, , 3];
  const values: unknown[] = [
    { a: undefined, b: () => 1, c: Symbol("s"), d: 1, [Symbol("k")]: 2 },
    [undefined, () => 1, Symbol("s"), NaN, Infinity, -Infinity, -0],
    sparse,
    { when, nested: { toJSON: (key: string) => `key ${key}` } },
    { toJSON: () => undefined },
    [Object(1.5), Object("boxed"), Object(false), new Map([[1, 2]]), new Set([1])],
    Object.assign(Object.create({ inherited: 1 }) as object, { own: 2 }),
    JSON.parse('{"__proto__":1,"x":[1]}'),
    "top",
    12,
    null,
    { "\u2028": "\ud800", é: "😀" },
  ];
  for (const value of values) {
    assert.equal(stringifyJson(value), JSON.stringify(value));
  }
  for (const value of [undefined, () => 1, Symbol("s")]) {
    assert.equal(stringifyJson(value), undefined);
  }
});

test("stringifyJson refuses what JSON.stringify refuses", () => {
  const loop: unknown[] = [];
  loop.push({ loop });
  assert.throws(() => stringifyJson(loop), /^TypeError: Converting circular structure to JSON/);
  assert.throws(
    () => stringifyJson({ n: 1n }),
    /^TypeError: Do not know how to serialize a BigInt/,
  );
  const shared = [1];
  assert.equal(stringifyJson([shared, shared]), "[[1],[1]]");
  assert.throws(() => rewrite({ toJSON: () => undefined }), TypeError);
});
