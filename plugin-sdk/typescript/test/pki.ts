// Certificates made at test time for remote mode's mutual TLS: a CA, a server certificate for
// localhost, 127.0.0.1 and ::1, a client of that CA and a client of another CA. Keys come from
// node:crypto (fast, native); node-forge writes and signs the certificates.

import { generateKeyPairSync, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

import * as forge from "node-forge";

/** A certificate and its key, PEM. */
export interface Issued {
  cert: string;
  key: string;
}

/** The files of one test run: the server's, the CA's, and the clients' PEM texts. */
export interface Pki {
  serverCert: string;
  serverKey: string;
  ca: string;
  caPem: Buffer;
  client: Issued;
  stranger: Issued;
}

function newKey(): {
  pem: string;
  forgeKey: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.PublicKey;
} {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
  const publicKey = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
  return { pem, forgeKey, publicKey };
}

function certificate(
  commonName: string,
  publicKey: forge.pki.PublicKey,
  issuer: { name: forge.pki.CertificateField[]; key: forge.pki.rsa.PrivateKey } | undefined,
  signingKey: forge.pki.rsa.PrivateKey,
  extensions: object[],
): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = "01" + randomBytes(8).toString("hex");
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  const subject = [{ name: "commonName", value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(issuer?.name ?? subject);
  cert.setExtensions(extensions);
  cert.sign(issuer?.key ?? signingKey, forge.md.sha256.create());
  return cert;
}

function newCa(name: string): {
  pem: string;
  issuer: { name: forge.pki.CertificateField[]; key: forge.pki.rsa.PrivateKey };
} {
  const key = newKey();
  const cert = certificate(name, key.publicKey, undefined, key.forgeKey, [
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
  ]);
  return {
    pem: forge.pki.certificateToPem(cert),
    issuer: { name: cert.subject.attributes, key: key.forgeKey },
  };
}

function issue(
  ca: ReturnType<typeof newCa>,
  name: string,
  usage: "serverAuth" | "clientAuth",
  altNames: object[] = [],
): Issued {
  const key = newKey();
  const extensions: object[] = [
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", [usage]: true },
  ];
  if (altNames.length > 0) {
    extensions.push({ name: "subjectAltName", altNames });
  }
  const cert = certificate(name, key.publicKey, ca.issuer, key.forgeKey, extensions);
  return { cert: forge.pki.certificateToPem(cert), key: key.pem };
}

/** Makes the certificates and writes the server's and the CA's files into `dir`. */
export function makePki(dir: string): Pki {
  const ca = newCa("hookvisor test CA");
  const other = newCa("another CA");
  const server = issue(ca, "localhost", "serverAuth", [
    { type: 2, value: "localhost" },
    { type: 7, ip: "127.0.0.1" },
    { type: 7, ip: "::1" },
  ]);
  const files = {
    serverCert: path.join(dir, "server.pem"),
    serverKey: path.join(dir, "server.key"),
    ca: path.join(dir, "ca.pem"),
  };
  fs.writeFileSync(files.serverCert, server.cert);
  fs.writeFileSync(files.serverKey, server.key, { mode: 0o600 });
  fs.writeFileSync(files.ca, ca.pem);
  return {
    ...files,
    caPem: Buffer.from(ca.pem),
    client: issue(ca, "supervisor.test", "clientAuth"),
    stranger: issue(other, "supervisor.test", "clientAuth"),
  };
}
