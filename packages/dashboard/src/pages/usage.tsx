// Usage over a window of days: a bar chart (plain SVG) of one figure per day, the totals, and the figures per day.
import type { UsageDay, UsageReport } from '@mags/api';
import { useState } from 'react';
import { bytes, number } from '../format';
import { useResource } from '../resource';
import { ErrorText, Section } from '../ui';

type Metric = Exclude<keyof UsageDay, 'date'> & string;
const METRICS: Array<{ key: Metric; label: string; show: (n: number) => string }> = [
  { key: 'sandbox_seconds', label: 'Sandbox time (s)', show: (n) => `${number(n)} s` },
  { key: 'cpu_seconds', label: 'CPU time (s)', show: (n) => `${number(n)} s` },
  { key: 'memory_gb_seconds', label: 'Memory (GiB·s)', show: (n) => `${number(n)} GiB·s` },
  { key: 'egress_bytes', label: 'Egress', show: bytes },
  { key: 'storage_bytes', label: 'Storage held', show: bytes },
  { key: 'jobs', label: 'Jobs', show: (n) => String(n) },
];

function Chart({ days, metric }: { days: UsageDay[]; metric: (typeof METRICS)[number] }) {
  const width = 640;
  const height = 200;
  const pad = { left: 8, right: 8, top: 16, bottom: 24 };
  const max = Math.max(0, ...days.map((d) => d[metric.key]));
  const slot = (width - pad.left - pad.right) / Math.max(1, days.length);
  const bar = Math.max(1, slot * 0.75);
  const plot = height - pad.top - pad.bottom;
  const label = `${metric.label} per day, ${days[0]?.date ?? ''} to ${days[days.length - 1]?.date ?? ''}; highest ${metric.show(max)}`;
  return (
    <svg className="chart" viewBox={`0 0 ${width} ${height}`} role="img" aria-labelledby="usage-chart-title">
      <title id="usage-chart-title">{label}</title>
      <line x1={pad.left} x2={width - pad.right} y1={height - pad.bottom} y2={height - pad.bottom} className="axis" />
      <text x={pad.left} y={12} className="tick">
        {metric.show(max)}
      </text>
      {days.map((d, i) => {
        const v = d[metric.key];
        const h = max > 0 ? (v / max) * plot : 0;
        const x = pad.left + i * slot + (slot - bar) / 2;
        return (
          <rect
            key={d.date}
            x={x}
            y={height - pad.bottom - h}
            width={bar}
            height={Math.max(h, v > 0 ? 1 : 0)}
            className="bar"
          >
            <title>{`${d.date}: ${metric.show(v)}`}</title>
          </rect>
        );
      })}
      {days.length > 0 ? (
        <>
          <text x={pad.left} y={height - 6} className="tick">
            {days[0].date}
          </text>
          <text x={width - pad.right} y={height - 6} className="tick" textAnchor="end">
            {days[days.length - 1].date}
          </text>
        </>
      ) : null}
    </svg>
  );
}

export function UsagePage() {
  const [windowDays, setWindowDays] = useState(30);
  const [metricKey, setMetricKey] = useState<Metric>('sandbox_seconds');
  const usage = useResource<UsageReport>(`/mags-usage?window_days=${windowDays}`, 30_000);
  const metric = METRICS.find((m) => m.key === metricKey)!;
  const report = usage.data;
  return (
    <>
      <h1>Usage</h1>
      <Section title="Per day">
        <div className="row wrap">
          <div>
            <label htmlFor="usage-window">Window</label>{' '}
            <select id="usage-window" value={windowDays} onChange={(e) => setWindowDays(Number(e.target.value))}>
              <option value={7}>7 days</option>
              <option value={30}>30 days</option>
              <option value={90}>90 days</option>
              <option value={366}>366 days</option>
            </select>
          </div>
          <div>
            <label htmlFor="usage-metric">Figure</label>{' '}
            <select id="usage-metric" value={metricKey} onChange={(e) => setMetricKey(e.target.value as Metric)}>
              {METRICS.map((m) => (
                <option key={m.key} value={m.key}>
                  {m.label}
                </option>
              ))}
            </select>
          </div>
        </div>
        <ErrorText error={usage.error} />
        {report ? <Chart days={report.days} metric={metric} /> : null}
      </Section>
      {report ? (
        <Section title={`Totals over ${report.window_days} days`}>
          <dl className="facts" id="usage-totals">
            {METRICS.map((m) => (
              <div key={m.key} className="fact">
                <dt>{m.key === 'storage_bytes' ? 'Storage held now' : m.label}</dt>
                <dd>{m.show(report.totals[m.key])}</dd>
              </div>
            ))}
          </dl>
          <details>
            <summary>Figures per day</summary>
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Day (UTC)</th>
                    {METRICS.map((m) => (
                      <th scope="col" key={m.key}>
                        {m.label}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {report.days
                    .slice()
                    .reverse()
                    .map((d) => (
                      <tr key={d.date}>
                        <td>{d.date}</td>
                        {METRICS.map((m) => (
                          <td key={m.key}>{m.show(d[m.key])}</td>
                        ))}
                      </tr>
                    ))}
                </tbody>
              </table>
            </div>
          </details>
        </Section>
      ) : null}
    </>
  );
}
