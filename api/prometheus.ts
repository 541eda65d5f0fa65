/**
 * Counters, gauges and histograms with labels, rendered in Prometheus's text format 0.0.4. The daemon needs only
 * these three kinds; prom-client cost it about 3 MB of resident memory.
 */

/** Label names to values. */
export type Labels = Readonly<Record<string, string>>;

/** What every metric is declared with. */
export interface MetricOptions {
  /** The full name, e.g. `polarstack_daemon_job_runs_total`. */
  readonly name: string;
  /** The HELP text. */
  readonly help: string;
  /** The label names every sample carries (in this order). */
  readonly labelNames?: readonly string[];
}

interface Metric {
  render(): string;
}

/** A set of metrics rendered together. */
export class Registry {
  /** The Content-Type of the rendered text. */
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  readonly #metrics = new Map<string, Metric>();

  /** Adds a metric; a second one with the same name is refused. */
  register(name: string, metric: Metric): void {
    if (this.#metrics.has(name)) throw new Error(`Cannot register metric "${name}": it exists already`);
    this.#metrics.set(name, metric);
  }

  /** The text of every metric, in the order they were registered. */
  metrics(): Promise<string> {
    return Promise.resolve([...this.#metrics.values()].map((m) => m.render()).join(""));
  }
}

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function escapeHelp(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Metric name rules of the exposition format, checked once at declaration. */
function checkNames(options: MetricOptions): void {
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(options.name)) throw new Error(`Invalid metric name "${options.name}"`);
  for (const label of options.labelNames ?? []) {
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(label) || label.startsWith("__")) {
      throw new Error(`Invalid label name "${label}" of metric "${options.name}"`);
    }
  }
}

abstract class Labelled<T> implements Metric {
  protected readonly series = new Map<string, { labels: Labels; value: T }>();
  protected readonly labelNames: readonly string[];

  constructor(protected readonly options: MetricOptions & { type: string }, registry: Registry) {
    checkNames(options);
    this.labelNames = options.labelNames ?? [];
    registry.register(options.name, this);
  }

  protected entry(labels: Labels, initial: () => T): { labels: Labels; value: T } {
    const ordered: Record<string, string> = {};
    for (const name of this.labelNames) ordered[name] = labels[name] ?? "";
    const key = this.labelNames.map((n) => ordered[n]).join("\u0000");
    let found = this.series.get(key);
    if (!found) {
      found = { labels: ordered, value: initial() };
      this.series.set(key, found);
    }
    return found;
  }

  protected labelText(labels: Labels, extra?: [string, string]): string {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
    if (extra) pairs.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
    return pairs.length > 0 ? `{${pairs.join(",")}}` : "";
  }

  protected header(): string {
    return `# HELP ${this.options.name} ${
      escapeHelp(this.options.help)
    }\n# TYPE ${this.options.name} ${this.options.type}\n`;
  }

  abstract render(): string;
}

/** A counter: only goes up. */
export class Counter extends Labelled<number> {
  constructor(options: MetricOptions, registry: Registry) {
    super({ ...options, type: "counter" }, registry);
  }

  /** Adds `by` (default 1; negative values are refused). */
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new Error(`Cannot add ${by} to counter "${this.options.name}": counters only go up`);
    this.entry(labels, () => 0).value += by;
  }

  render(): string {
    const lines = [...this.series.values()].map((s) =>
      `${this.options.name}${this.labelText(s.labels)} ${formatValue(s.value)}\n`
    );
    return this.header() + lines.join("");
  }
}

/** A gauge: set to a value; `collect` sets it just before each rendering. */
export class Gauge extends Labelled<number> {
  readonly #collect?: (gauge: Gauge) => void;

  constructor(options: MetricOptions & { collect?: (gauge: Gauge) => void }, registry: Registry) {
    super({ ...options, type: "gauge" }, registry);
    this.#collect = options.collect;
  }

  /** Sets the value of one series. */
  set(labels: Labels, value: number): void {
    this.entry(labels, () => 0).value = value;
  }

  /** Removes every series: the `set` calls that follow say all that is true now. */
  clear(): void {
    this.series.clear();
  }

  render(): string {
    this.#collect?.(this);
    const lines = [...this.series.values()].map((s) =>
      `${this.options.name}${this.labelText(s.labels)} ${formatValue(s.value)}\n`
    );
    return this.header() + lines.join("");
  }
}

interface HistogramSeries {
  readonly counts: number[];
  sum: number;
  count: number;
}

/** A histogram with fixed upper bounds (the `+Inf` bucket is implied). */
export class Histogram extends Labelled<HistogramSeries> {
  readonly #buckets: readonly number[];

  constructor(options: MetricOptions & { buckets: readonly number[] }, registry: Registry) {
    super({ ...options, type: "histogram" }, registry);
    if (this.labelNames.includes("le")) throw new Error(`Histogram "${options.name}" cannot have a label "le"`);
    this.#buckets = [...new Set(options.buckets)].filter(Number.isFinite).sort((a, b) => a - b);
  }

  /** Shows a series with no observation yet, so that its first one counts in `increase()`. */
  start(labels: Labels): void {
    this.#series(labels);
  }

  /** Records one observation. */
  observe(labels: Labels, value: number): void {
    const series = this.#series(labels);
    this.#buckets.forEach((bound, i) => {
      if (value <= bound) series.counts[i]++;
    });
    series.sum += value;
    series.count++;
  }

  #series(labels: Labels): HistogramSeries {
    return this.entry(labels, () => ({ counts: this.#buckets.map(() => 0), sum: 0, count: 0 })).value;
  }

  render(): string {
    const name = this.options.name;
    const lines: string[] = [];
    for (const { labels, value } of this.series.values()) {
      this.#buckets.forEach((bound, i) => {
        lines.push(`${name}_bucket${this.labelText(labels, ["le", formatValue(bound)])} ${value.counts[i]}\n`);
      });
      lines.push(`${name}_bucket${this.labelText(labels, ["le", "+Inf"])} ${value.count}\n`);
      lines.push(`${name}_sum${this.labelText(labels)} ${formatValue(value.sum)}\n`);
      lines.push(`${name}_count${this.labelText(labels)} ${value.count}\n`);
    }
    return this.header() + lines.join("");
  }
}
