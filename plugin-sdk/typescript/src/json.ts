// JSON text to values and back with every number kept exactly.
//
// `JSON.parse` reads each number as a double: `12345678901234567890` becomes
// `12345678901234567000`, `-0.0` and `-0` become `0`, `1e+3` becomes `1000`, `1e+400` becomes
// `Infinity`. Node 20 has no `JSON.rawJSON`, so the SDK parses and writes JSON itself:
//
// - `parseJson` gives a `number` for a number whose text is exactly how JavaScript writes that
//   double (`String(Number(text)) === text`: `42`, `1.5`, `0.1`, `5e-324`), so `JSON.stringify`
//   would write it back unchanged, and a `LosslessNumber` holding the text for any other
//   (`12345678901234567890`, `1.50`, `-0.0`, `-0`, `1e+3`, `1e+400`).
// - `stringifyJson` writes what `JSON.stringify` writes (no replacer, no indent), except that a
//   `LosslessNumber` is written as its text.
//
// The supervisor hands a plugin canonical JSON (no duplicate keys, bounded depth and size); the
// parser still checks the whole grammar of RFC 8259, since a request that does not parse is
// answered INVALID_ARGUMENT.

/** The registered key under which a `LosslessNumber` gives its text (two copies of the SDK
 * recognise each other's numbers). */
const NUMBER_TEXT: unique symbol = Symbol.for("hookvisor.plugin.losslessNumber.text");

/** The JSON number grammar (RFC 8259 §6). */
const NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

/**
 * A JSON number that a double would not give back as written, kept as its text: an integer past
 * 2^53 (`12345678901234567890`), more digits than a double holds
 * (`0.1000000000000000000000000001`), a negative zero (`-0.0`, `-0`), trailing zeros (`1.50`), an
 * exponent (`1e+3`), or a magnitude out of a double's range (`1e+400`, `-1e-400`).
 *
 * `toString()` is the text; `valueOf()` the nearest double (`-0` for `-0.0`, `Infinity` for
 * `1e+400`), so `Number(n)`, `n > 3` and `n * 2` work as they would on that double. The SDK writes
 * it back as its text (`rewrite`, `session.patch`, `stringifyJson`); `JSON.stringify` writes the
 * nearest double (`toJSON`). Make one to send a number of your own exactly:
 * `new LosslessNumber("12345678901234567890")`.
 */
export class LosslessNumber {
  readonly #text: string;

  /** Throws a `TypeError` unless `text` is a JSON number. */
  constructor(text: string) {
    if (typeof text !== "string" || !NUMBER.test(text)) {
      throw new TypeError(`not a JSON number: ${JSON.stringify(text)}`);
    }
    this.#text = text;
  }

  /** The number's JSON text, exactly as received (or given). */
  toString(): string {
    return this.#text;
  }

  /** The nearest double. */
  valueOf(): number {
    return Number(this.#text);
  }

  /** What `JSON.stringify` writes: the nearest double (`null` beyond a double's range). */
  toJSON(): number {
    return this.valueOf();
  }

  get [NUMBER_TEXT](): string {
    return this.#text;
  }

  /** How `console.log` and `util.inspect` show it: `LosslessNumber(1e+400)`. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `LosslessNumber(${this.#text})`;
  }
}

/** Whether `value` is a `LosslessNumber` (of this or another copy of the SDK). */
export function isLosslessNumber(value: unknown): value is LosslessNumber {
  return typeof textOf(value) === "string";
}

function textOf(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const text: unknown = (value as { [NUMBER_TEXT]?: unknown })[NUMBER_TEXT];
  return typeof text === "string" ? text : undefined;
}

/** The value for a number's `text`: a `number` when it writes back as `text`, else kept whole. */
function numberOf(text: string): number | LosslessNumber {
  const double = Number(text);
  return String(double) === text ? double : new LosslessNumber(text);
}

/**
 * Parses one JSON value like `JSON.parse` (no reviver), keeping every number exactly: a `number`
 * when JavaScript writes that double as the same text, a `LosslessNumber` otherwise. Throws a
 * `SyntaxError` for text that is not one JSON value.
 */
export function parseJson(text: string): unknown {
  const parser = new Parser(String(text));
  parser.skipSpace();
  const value = parser.value();
  parser.skipSpace();
  if (parser.at < parser.text.length) {
    parser.fail();
  }
  return value;
}

class Parser {
  at = 0;

  constructor(readonly text: string) {}

  value(): unknown {
    const text = this.text;
    switch (text.charCodeAt(this.at)) {
      case 0x7b: // {
        return this.object();
      case 0x5b: // [
        return this.array();
      case 0x22: // "
        return this.string();
      case 0x74: // t
        return this.literal("true", true);
      case 0x66: // f
        return this.literal("false", false);
      case 0x6e: // n
        return this.literal("null", null);
      default:
        return this.number();
    }
  }

  object(): Record<string, unknown> {
    const object: Record<string, unknown> = {};
    this.at++; // {
    this.skipSpace();
    if (this.text.charCodeAt(this.at) === 0x7d) {
      this.at++;
      return object;
    }
    for (;;) {
      if (this.text.charCodeAt(this.at) !== 0x22) {
        this.fail();
      }
      const key = this.string();
      this.skipSpace();
      this.expect(0x3a); // :
      this.skipSpace();
      const value = this.value();
      if (key === "__proto__") {
        // An own property, as JSON.parse makes it, never the object's prototype.
        Object.defineProperty(object, key, {
          value,
          writable: true,
          enumerable: true,
          configurable: true,
        });
      } else {
        object[key] = value;
      }
      this.skipSpace();
      const next = this.text.charCodeAt(this.at);
      this.at++;
      if (next === 0x7d) {
        return object;
      }
      if (next !== 0x2c) {
        this.at--;
        this.fail();
      }
      this.skipSpace();
    }
  }

  array(): unknown[] {
    const array: unknown[] = [];
    this.at++; // [
    this.skipSpace();
    if (this.text.charCodeAt(this.at) === 0x5d) {
      this.at++;
      return array;
    }
    for (;;) {
      array.push(this.value());
      this.skipSpace();
      const next = this.text.charCodeAt(this.at);
      this.at++;
      if (next === 0x5d) {
        return array;
      }
      if (next !== 0x2c) {
        this.at--;
        this.fail();
      }
      this.skipSpace();
    }
  }

  string(): string {
    const text = this.text;
    const start = this.at;
    let escaped = false;
    this.at++; // "
    for (;;) {
      const c = text.charCodeAt(this.at);
      if (c === 0x22) {
        break;
      }
      if (Number.isNaN(c) || c < 0x20) {
        this.fail();
      }
      if (c === 0x5c) {
        escaped = true;
        this.at++;
        const e = text.charCodeAt(this.at);
        if (e === 0x75) {
          // \uXXXX
          for (let i = 1; i <= 4; i++) {
            if (!isHexDigit(text.charCodeAt(this.at + i))) {
              this.at += i;
              this.fail();
            }
          }
          this.at += 4;
        } else if (!isSimpleEscape(e)) {
          this.fail();
        }
      }
      this.at++;
    }
    this.at++; // "
    const literal = text.slice(start, this.at);
    // A checked string literal: JSON.parse decodes its escapes exactly.
    return escaped ? (JSON.parse(literal) as string) : literal.slice(1, -1);
  }

  number(): number | LosslessNumber {
    const text = this.text;
    const start = this.at;
    if (text.charCodeAt(this.at) === 0x2d) {
      this.at++; // -
    }
    if (text.charCodeAt(this.at) === 0x30) {
      this.at++; // a lone 0: no digit may follow
    } else if (isDigit(text.charCodeAt(this.at))) {
      this.digits();
    } else {
      this.fail();
    }
    if (text.charCodeAt(this.at) === 0x2e) {
      this.at++; // .
      this.needDigits();
    }
    const e = text.charCodeAt(this.at);
    if (e === 0x65 || e === 0x45) {
      this.at++; // e, E
      const sign = text.charCodeAt(this.at);
      if (sign === 0x2b || sign === 0x2d) {
        this.at++;
      }
      this.needDigits();
    }
    return numberOf(text.slice(start, this.at));
  }

  needDigits(): void {
    if (!isDigit(this.text.charCodeAt(this.at))) {
      this.fail();
    }
    this.digits();
  }

  digits(): void {
    while (isDigit(this.text.charCodeAt(this.at))) {
      this.at++;
    }
  }

  literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.at)) {
      this.fail();
    }
    this.at += word.length;
    return value;
  }

  expect(code: number): void {
    if (this.text.charCodeAt(this.at) !== code) {
      this.fail();
    }
    this.at++;
  }

  skipSpace(): void {
    const text = this.text;
    for (;;) {
      const c = text.charCodeAt(this.at);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) {
        return;
      }
      this.at++;
    }
  }

  fail(): never {
    if (this.at >= this.text.length) {
      throw new SyntaxError("Unexpected end of JSON input");
    }
    const token = JSON.stringify(this.text.charAt(this.at));
    throw new SyntaxError(`Unexpected token ${token} in JSON at position ${this.at}`);
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHexDigit(c: number): boolean {
  return isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** `"`, `\`, `/`, `b`, `f`, `n`, `r`, `t` after a backslash. */
function isSimpleEscape(c: number): boolean {
  return (
    c === 0x22 ||
    c === 0x5c ||
    c === 0x2f ||
    c === 0x62 ||
    c === 0x66 ||
    c === 0x6e ||
    c === 0x72 ||
    c === 0x74
  );
}

/**
 * Writes `value` as JSON exactly as `JSON.stringify(value)` does (`toJSON`, boxed primitives,
 * `undefined` and functions left out of objects and `null` in arrays, `null` for NaN and the
 * infinities, a `TypeError` for a BigInt or a circular structure), except that a `LosslessNumber`
 * is written as its text. `undefined` when `value` has no JSON form (`undefined`, a function).
 */
export function stringifyJson(value: unknown): string | undefined {
  const out: string[] = [];
  return new Writer(out).property({ "": value }, "") ? out.join("") : undefined;
}

class Writer {
  private readonly open: object[] = [];

  constructor(private readonly out: string[]) {}

  /** Writes `holder[key]`; false when it has no JSON form (the caller leaves it out). */
  property(holder: object, key: string): boolean {
    let value: unknown = (holder as Record<string, unknown>)[key];
    const text = textOf(value);
    if (text !== undefined) {
      this.out.push(text);
      return true;
    }
    if ((typeof value === "object" && value !== null) || typeof value === "bigint") {
      const toJSON: unknown = (value as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === "function") {
        value = toJSON.call(value, key);
        const converted = textOf(value);
        if (converted !== undefined) {
          this.out.push(converted);
          return true;
        }
      }
    }
    if (typeof value === "object" && value !== null) {
      if (value instanceof Number) {
        value = Number(value);
      } else if (value instanceof String) {
        value = String(value);
      } else if (value instanceof Boolean) {
        value = value.valueOf();
      } else if (value instanceof BigInt) {
        value = value.valueOf();
      }
    }
    switch (typeof value) {
      case "string":
        this.out.push(JSON.stringify(value));
        return true;
      case "number":
        this.out.push(Number.isFinite(value) ? String(value) : "null");
        return true;
      case "boolean":
        this.out.push(value ? "true" : "false");
        return true;
      case "bigint":
        throw new TypeError("Do not know how to serialize a BigInt");
      case "object":
        if (value === null) {
          this.out.push("null");
        } else if (Array.isArray(value)) {
          this.array(value);
        } else {
          this.object(value);
        }
        return true;
      default:
        // undefined, a function, a symbol.
        return false;
    }
  }

  private enter(value: object): void {
    if (this.open.includes(value)) {
      throw new TypeError("Converting circular structure to JSON");
    }
    this.open.push(value);
  }

  private array(array: unknown[]): void {
    this.enter(array);
    this.out.push("[");
    for (let index = 0; index < array.length; index++) {
      if (index > 0) {
        this.out.push(",");
      }
      if (!this.property(array, String(index))) {
        this.out.push("null");
      }
    }
    this.out.push("]");
    this.open.pop();
  }

  private object(object: object): void {
    this.enter(object);
    this.out.push("{");
    let first = true;
    for (const key of Object.keys(object)) {
      const mark = this.out.length;
      this.out.push(first ? "" : ",", JSON.stringify(key), ":");
      if (this.property(object, key)) {
        first = false;
      } else {
        this.out.length = mark;
      }
    }
    this.out.push("}");
    this.open.pop();
  }
}
