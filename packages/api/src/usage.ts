// Usage figures of the REST API: per UTC day, what a user's sandboxes used (metered by the agents from the cgroups
// and the network) and what the store holds for them.
import { type Static, Type } from 'typebox';

/** Longest window `GET /api/v1/mags-usage` answers, in days. */
export const MAX_USAGE_WINDOW_DAYS = 366;
export const DEFAULT_USAGE_WINDOW_DAYS = 30;

export const UsageQuery = Type.Object(
  {
    window_days: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_USAGE_WINDOW_DAYS,
        default: DEFAULT_USAGE_WINDOW_DAYS,
        description: 'How many days back, today included (UTC days)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type UsageQuery = Static<typeof UsageQuery>;

const UsageFigures = {
  jobs: Type.Integer({ description: 'Jobs that ran (first metered) that day' }),
  sandbox_seconds: Type.Number({ description: 'Time sandboxes ran jobs, summed over sandboxes' }),
  cpu_seconds: Type.Number({ description: "CPU time used by the sandboxes' processes (cpuacct)" }),
  memory_gb_seconds: Type.Number({ description: 'Memory charged to the sandboxes, integrated over time (GiB·s)' }),
  egress_bytes: Type.Integer({ description: 'Bytes the sandboxes sent out (their network link)' }),
};

export const UsageDay = Type.Object({
  date: Type.String({ description: 'YYYY-MM-DD (UTC)' }),
  ...UsageFigures,
  storage_bytes: Type.Integer({
    description: 'Bytes held in workspaces and uploaded files (the last figure of that day; today: now)',
  }),
});
export type UsageDay = Static<typeof UsageDay>;

export const UsageReport = Type.Object(
  {
    window_days: Type.Integer(),
    days: Type.Array(UsageDay, { description: 'Oldest first, one per day of the window' }),
    totals: Type.Object({
      ...UsageFigures,
      storage_bytes: Type.Integer({ description: 'Held now' }),
    }),
  },
  { $id: 'UsageReport' },
);
export type UsageReport = Static<typeof UsageReport>;
