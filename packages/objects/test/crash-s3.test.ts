// Crash safety of sync on S3 (Ceph RGW; started here unless MAGS_TEST_S3_URL is set).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { describe } from 'node:test';
import { crashSuite } from './helpers/crash-suite.js';
import { useTestS3Store } from './helpers/rgw.js';

const s3 = useTestS3Store();
describe('crash safety on S3 (RGW)', () => crashSuite('rgw', s3.store, s3.url));
