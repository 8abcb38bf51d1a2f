// S3ObjectStore against a real S3 server (Ceph RGW; started here unless MAGS_TEST_S3_URL is set): the same store
// contract as the local store, including compare-and-swap races decided by RGW's conditional writes.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { describe } from 'node:test';
import { storeContract } from './helpers/contract.js';
import { useTestS3Store } from './helpers/rgw.js';

const s3 = useTestS3Store();
describe('S3ObjectStore on RGW: store contract', () => storeContract(s3.store));
