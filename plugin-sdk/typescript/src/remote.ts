// Remote mode (contract §2.6): the settings of a plugin served on TCP with mutual TLS instead of
// hookvisor's Unix socket, for a supervisor that names it by `endpoint`. Every setting is checked
// before the server is built, so each mistake is one line naming the variable (or the option) and
// the file: exit 1 for a bad setting, exit 2 for an address that cannot be bound.

import { X509Certificate, createPrivateKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import * as dns from "node:dns/promises";
import * as fs from "node:fs";
import * as net from "node:net";

import * as grpc from "@grpc/grpc-js";

import { messageOf } from "./call";

/** Remote mode's settings, for `serveRemote` and `run`'s `remote` option. */
export interface RemoteOptions {
  /** `HOST:PORT` to listen on; port 0 picks one; IPv6 as `[ADDRESS]:PORT`. */
  listen: string;
  /** The server's certificate chain: a PEM file's path, or its contents as a `Buffer`. */
  cert: string | Buffer;
  /** The server's private key (PEM, unencrypted): a path, or the contents as a `Buffer`. */
  key: string | Buffer;
  /** The CA every client's certificate must chain to (PEM): a path, or the contents. */
  clientCa: string | Buffer;
}

export const REMOTE_LISTEN_ENV = "HOOKVISOR_REMOTE_LISTEN";
const TLS_CERT_ENV = "HOOKVISOR_TLS_CERT";
const TLS_KEY_ENV = "HOOKVISOR_TLS_KEY";
const TLS_CLIENT_CA_ENV = "HOOKVISOR_TLS_CLIENT_CA";

/** What messages call each setting: the environment variables, or the options' names. */
type Names = Record<keyof RemoteOptions, string>;
const ENV_NAMES: Names = {
  listen: REMOTE_LISTEN_ENV,
  cert: TLS_CERT_ENV,
  key: TLS_KEY_ENV,
  clientCa: TLS_CLIENT_CA_ENV,
};
const OPTION_NAMES: Names = { listen: "listen", cert: "cert", key: "key", clientCa: "clientCa" };

/** A setting the process cannot start with: its one line, and the exit status. */
export class Refusal extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
  }
}

/** Checked settings: where to listen and the credentials made of the checked PEM files. */
export interface Remote {
  listen: string;
  host: string;
  port: number;
  credentials: grpc.ServerCredentials;
}

/**
 * Remote mode's options from the environment (`HOOKVISOR_REMOTE_LISTEN` is set); throws a
 * `Refusal` when a TLS variable is missing.
 */
export function optionsFromEnv(): RemoteOptions {
  for (const name of [TLS_CERT_ENV, TLS_KEY_ENV, TLS_CLIENT_CA_ENV]) {
    if (!process.env[name]) {
      throw new Refusal(
        `${name} is not set; remote mode (${REMOTE_LISTEN_ENV}) needs ${TLS_CERT_ENV}, ` +
          `${TLS_KEY_ENV} and ${TLS_CLIENT_CA_ENV} (PEM files)`,
        1,
      );
    }
  }
  return {
    listen: process.env[REMOTE_LISTEN_ENV] ?? "",
    cert: process.env[TLS_CERT_ENV] ?? "",
    key: process.env[TLS_KEY_ENV] ?? "",
    clientCa: process.env[TLS_CLIENT_CA_ENV] ?? "",
  };
}

/** Throws a `Refusal` when hookvisor's magic cookie is set: a plugin it starts serves on its
 * Unix socket, never on the network. */
export function refuseCookie(): void {
  if (process.env.HOOKVISOR_MAGIC_COOKIE !== undefined) {
    throw new Refusal(
      `HOOKVISOR_MAGIC_COOKIE and ${REMOTE_LISTEN_ENV} are both set: a plugin hookvisor starts ` +
        "serves on its Unix socket; remote mode is for a plugin the operator starts without the cookie",
      1,
    );
  }
}

/**
 * Checks `options` (`fromEnv`: named as the environment variables in messages) and builds the
 * credentials: TLS requiring a client certificate that chains to `clientCa`. Throws a `Refusal`.
 */
export function checkRemote(options: RemoteOptions, fromEnv: boolean): Remote {
  const names = fromEnv ? ENV_NAMES : OPTION_NAMES;
  const { host, port } = splitListen(names.listen, options.listen);
  const where = (field: keyof RemoteOptions): string => {
    const source = options[field];
    return typeof source === "string"
      ? `${names[field]} file ${source}`
      : `${names[field]} (PEM given as a Buffer)`;
  };
  const bad = (field: keyof RemoteOptions, why: string) =>
    new Refusal(`${where(field)} is not a valid PEM file: ${why}`, 1);
  const read = (field: "cert" | "key" | "clientCa"): Buffer => {
    const source = options[field];
    if (typeof source !== "string") {
      return source;
    }
    try {
      return fs.readFileSync(source);
    } catch (err) {
      throw new Refusal(`cannot read ${where(field)}: ${systemMessage(err)}`, 1);
    }
  };
  const certificates = (field: "cert" | "clientCa", pem: Buffer): X509Certificate[] => {
    const blocks = pemBlocks(pem, "CERTIFICATE");
    if (blocks.length === 0) {
      throw bad(field, "no PEM CERTIFICATE block");
    }
    return blocks.map((block) => {
      try {
        return new X509Certificate(block);
      } catch (err) {
        throw bad(field, `a certificate does not parse (${messageOf(err)})`);
      }
    });
  };

  const cert = read("cert");
  const key = read("key");
  const clientCa = read("clientCa");
  const chain = certificates("cert", cert);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.toString("latin1"))) {
    throw bad("key", "no PEM PRIVATE KEY block");
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw bad("key", `the key does not parse (${messageOf(err)})`);
  }
  certificates("clientCa", clientCa);
  if (!chain[0].checkPrivateKey(privateKey)) {
    throw new Refusal(`${where("key")} is not the key of ${where("cert")}`, 1);
  }
  const credentials = grpc.ServerCredentials.createSsl(
    clientCa,
    [{ private_key: key, cert_chain: cert }],
    true,
  );
  return { listen: options.listen, host, port, credentials };
}

/**
 * Adds `remote`'s TLS port to `server`; resolves with the address bound as `host:port`
 * (`[v6]:port`). Throws a `Refusal` (exit 2) when it cannot be bound.
 */
export async function bindRemote(server: grpc.Server, remote: Remote): Promise<string> {
  const fail = (err: unknown) =>
    new Refusal(`cannot listen on ${remote.listen}: ${systemMessage(err)}`, 2);
  let address: string;
  let family: number;
  try {
    ({ address, family } = await dns.lookup(remote.host));
    // One listen of our own first, so an error is Node's precise one (EADDRINUSE...) rather than
    // grpc-js's "No address added out of total 1 resolved".
    await new Promise<void>((resolve, reject) => {
      const probe = net.createServer();
      probe.once("error", reject);
      probe.listen({ host: address, port: remote.port, exclusive: true }, () =>
        probe.close(() => resolve()),
      );
    });
  } catch (err) {
    throw fail(err);
  }
  const host = family === 6 ? `[${address}]` : address;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${remote.port}`, remote.credentials, (err, bound) =>
      err ? reject(fail(err)) : resolve(bound),
    );
  });
  return `${host}:${port}`;
}

/** The line tests and operators wait for, once the server listens. */
export function listeningLine(address: string): string {
  return `hookvisor plugin listening on ${address} (TLS, client certificates required)`;
}

function splitListen(name: string, listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(":");
  let host = colon < 0 ? "" : listen.slice(0, colon);
  const port = listen.slice(colon + 1);
  if (host.startsWith("[") && host.endsWith("]")) {
    host = host.slice(1, -1);
  } else if (host.includes(":")) {
    host = ""; // an IPv6 address needs its brackets
  }
  if (colon < 0 || host === "" || !/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) {
    throw new Refusal(
      `${name} must be HOST:PORT (port 0 picks one; IPv6 as [ADDRESS]:PORT), got "${listen}"`,
      1,
    );
  }
  return { host, port: Number(port) };
}

/** The `label` blocks of a PEM text, each with its armour. */
function pemBlocks(pem: Buffer, label: string): string[] {
  const pattern = new RegExp(`-----BEGIN ${label}-----[^-]*-----END ${label}-----`, "g");
  return pem.toString("latin1").match(pattern) ?? [];
}

/** An error's message without Node's `code, syscall path` decoration when it has a plain one. */
function systemMessage(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const plain: Record<string, string> = {
    ENOENT: "no such file or directory",
    EACCES: "permission denied",
    EISDIR: "is a directory",
    EADDRINUSE: "address already in use",
    EADDRNOTAVAIL: "address not available",
    ENOTFOUND: "no such host",
    EAI_AGAIN: "the host name could not be resolved now",
  };
  return (code !== undefined && plain[code]) || messageOf(err);
}
