// Workspace sync on S3 (Ceph RGW; started here unless MAGS_TEST_S3_URL is set).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { describe } from 'node:test';
import { useTestS3Store } from './helpers/rgw.js';
import { syncSuite } from './helpers/sync-suite.js';

const s3 = useTestS3Store();
describe('sync on S3 (RGW)', () => syncSuite('rgw', s3.store));
