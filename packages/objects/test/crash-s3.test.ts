// Crash safety of sync on S3 (Ceph RGW; started here unless MAGS_TEST_S3_URL is set).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { after, before, describe } from 'node:test';
import { openObjectStore, type ObjectStore } from '../src/index.js';
import { crashSuite } from './helpers/crash-suite.js';
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

describe('crash safety on S3 (RGW)', () => crashSuite('rgw', () => store, () => s3.url));
