// A live line chart (uPlot) of one SeriesWindow: one line per key, y from zero, values and
// axis in the caller's units. Owns the uPlot instance's life (create, resize, recreate when
// the set of lines changes, destroy); never computes the data it draws.

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { AlignedSeries } from '../lib/series';

/** Line colours, distinguishable and readable on white; assigned by key order. */
export const SERIES_COLOURS = [
  '#1f5fbf',
  '#c2410c',
  '#067647',
  '#7a2bb5',
  '#b42318',
  '#0e7490',
  '#a16207',
  '#4b5563',
] as const;

const HEIGHT = 200;
/** The shortest time the x axis spans (while the history is shorter). */
const MIN_SPAN_SECONDS = 120;

/** `14:05:30`: wall-clock time of a sample (seconds since the epoch), 24-hour. */
function clockTime(seconds: number): string {
  const d = new Date(seconds * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** While the pointer is not over the chart, the legend shows the newest values. */
function showLatestInLegend(plot: uPlot): void {
  const last = plot.data[0].length - 1;
  if (last >= 0 && plot.cursor.idx == null) plot.setLegend({ idx: last });
}

/** The colour of the n-th line. */
export function seriesColour(index: number): string {
  return SERIES_COLOURS[index % SERIES_COLOURS.length] ?? '#1f5fbf';
}

/**
 * A chart of `series`; `format` renders values on the axis and in the legend, `colourOf`
 * gives each line its colour (shared with the tables, so a VIP has one colour everywhere).
 */
export function LiveChart(props: {
  title: string;
  series: AlignedSeries;
  format: (value: number) => string;
  colourOf: (key: string) => string;
  /** Seconds of history the x axis spans. */
  windowSeconds: number;
  testId: string;
}) {
  const windowSeconds = props.windowSeconds;
  const holder = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const plotKeys = useRef<string>('');
  const formatRef = useRef(props.format);
  formatRef.current = props.format;

  // (Re)creates the chart when the set of lines changes, otherwise just feeds new data.
  useEffect(() => {
    const element = holder.current;
    if (!element) return;
    const keysId = props.series.keys.map((k) => `${k}=${props.colourOf(k)}`).join('|');
    if (plot.current && plotKeys.current === keysId) {
      plot.current.setData(props.series.data as uPlot.AlignedData);
      showLatestInLegend(plot.current);
      return;
    }
    plot.current?.destroy();
    const format = (value: number | null | undefined) =>
      value === null || value === undefined ? '—' : formatRef.current(value);
    const options: uPlot.Options = {
      width: Math.max(200, element.clientWidth),
      height: HEIGHT,
      pxAlign: 0,
      cursor: { drag: { x: false, y: false } },
      scales: {
        // From two minutes, growing with the history up to the whole window, so the time
        // axis scrolls steadily from the first sample.
        x: {
          time: true,
          range: (u, _min, max) => {
            // The time the samples cover (uPlot pads the min it passes for a single sample).
            const first = u.data[0]?.[0];
            const held = first != null && Number.isFinite(max - first) ? max - first : 0;
            return [max - Math.min(windowSeconds, Math.max(MIN_SPAN_SECONDS, held)), max];
          },
        },
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        {
          stroke: '#4b5563',
          grid: { stroke: '#e5e8ee' },
          ticks: { stroke: '#d6dbe3' },
          space: 70,
          values: (_u, splits) => splits.map((t) => clockTime(t)),
        },
        {
          stroke: '#4b5563',
          size: 84,
          grid: { stroke: '#e5e8ee' },
          ticks: { stroke: '#d6dbe3' },
          values: (_u, splits) => splits.map((v) => format(v)),
        },
      ],
      series: [
        {
          label: 'time',
          value: (_u: uPlot, v: number | null) => (v == null ? '' : clockTime(v)),
        },
        ...props.series.keys.map((key) => ({
          label: key,
          stroke: props.colourOf(key),
          width: 2,
          spanGaps: false,
          value: (_u: uPlot, v: number | null) => format(v),
        })),
      ],
      legend: { live: true },
    };
    plot.current = new uPlot(options, props.series.data as uPlot.AlignedData, element);
    plotKeys.current = keysId;
    showLatestInLegend(plot.current);
  }, [props.series, props.colourOf]);

  // Follows the container's width (window resize, sidebar, zoom).
  useEffect(() => {
    const element = holder.current;
    if (!element || typeof ResizeObserver === 'undefined') return;
    const observer = new ResizeObserver(() => {
      plot.current?.setSize({ width: Math.max(200, element.clientWidth), height: HEIGHT });
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  useEffect(
    () => () => {
      plot.current?.destroy();
      plot.current = null;
    },
    [],
  );

  return (
    <figure class="chart" data-testid={props.testId} data-points={props.series.data[0].length}>
      <figcaption>{props.title}</figcaption>
      <div
        class="chart-canvas"
        ref={holder}
        role="img"
        aria-label={`${props.title}, per VIP, up to the last ${Math.round(props.windowSeconds / 60)} minutes`}
      />
    </figure>
  );
}
