// S3ObjectStore against a real S3 server (Ceph RGW; started here unless MAGS_TEST_S3_URL is set): the same store
// contract as the local store, including compare-and-swap races decided by RGW's conditional writes.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { after, before, describe } from 'node:test';
import { openObjectStore, type ObjectStore } from '../src/index.js';
import { storeContract } from './helpers/contract.js';
import { startTestS3, type TestS3 } from './helpers/rgw.js';

let s3: TestS3;
let store: ObjectStore;
before(async () => {
  s3 = await startTestS3();
  store = openObjectStore(s3.url);
});
after(async () => {
  await store?.close();
  await s3?.stop();
});

describe('S3ObjectStore on RGW: store contract', () => storeContract(() => store));
