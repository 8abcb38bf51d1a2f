// Identifiers. Job ids are UUIDv7 so that ordering by id is ordering by submission (the queue is FIFO by id).
import { randomBytes } from 'node:crypto';

let lastMs = 0;
let counter = 0;

/** A UUIDv7 (RFC 9562) that is strictly increasing within this process, even within one millisecond. */
export function uuidv7(): string {
  let ms = Date.now();
  if (ms > lastMs) {
    lastMs = ms;
    counter = randomBytes(2).readUInt16BE(0) & 0x3ff; // leave room to count up within the millisecond
  } else {
    ms = lastMs;
    counter++;
    if (counter > 0xfff) {
      // 4096 ids in one millisecond: borrow the next millisecond rather than repeat.
      lastMs = ms = lastMs + 1;
      counter = 0;
    }
  }
  const b = randomBytes(16);
  b.writeUIntBE(ms, 0, 6);
  b[6] = 0x70 | ((counter >> 8) & 0x0f);
  b[7] = counter & 0xff;
  b[8] = 0x80 | (b[8] & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A job's URL subdomain: 12 random hex characters (48 bits), as the hosted service's. */
export function newSubdomain(): string {
  return randomBytes(6).toString('hex');
}
