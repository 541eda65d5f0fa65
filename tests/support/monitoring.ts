/** The monitoring component as the tests read it: the alerts, the dashboard and the expressions in them. */
import { load } from "js-yaml";
import { grafanaToPromql } from "./promql.ts";

const DIR = new URL("../../manifests/monitoring/", import.meta.url);
// deno-lint-ignore no-explicit-any
type Doc = any;

/** One alerting rule of the PrometheusRule. */
export interface AlertRule {
  /** The alert's name. */
  readonly alert: string;
  /** Its PromQL. */
  readonly expr: string;
  /** The labels it adds (severity). */
  readonly labels: Record<string, string>;
  /** Its summary and description templates. */
  readonly annotations: Record<string, string>;
}

const ruleDoc = load(Deno.readTextFileSync(new URL("prometheus_rule.yaml", DIR))) as Doc;

/** The PrometheusRule's spec: a rule file's `groups`, as promtool reads it. */
export const RULE_GROUPS: { groups: Doc[] } = ruleDoc.spec;

/** Every alert of the PrometheusRule. */
export const ALERTS: AlertRule[] = RULE_GROUPS.groups.flatMap((g: Doc) => g.rules).filter((r: Doc) => r.alert);

/** The Grafana dashboard's JSON model. */
export const DASHBOARD: Doc = JSON.parse(Deno.readTextFileSync(new URL("dashboard.json", DIR)));

/**
 * Metrics of kube-state-metrics that the alerts and the dashboard use, as its node metrics documentation lists them
 * (`kube_node_status_condition{node, condition, status}`, `kube_node_info{node}`), and Prometheus's own `up`.
 */
export const OTHERS_METRICS: readonly string[] = ["kube_node_info", "kube_node_status_condition", "up"];

/** Every PromQL expression of the dashboard as PromQL: its panels' targets and its query variables' selectors. */
export function dashboardExpressions(): string[] {
  const exprs: string[] = [];
  const walk = (panels: Doc[]) => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) exprs.push(grafanaToPromql(target.expr));
      walk(panel.panels ?? []);
    }
  };
  walk(DASHBOARD.panels);
  for (const variable of DASHBOARD.templating.list) {
    if (variable.type !== "query") continue;
    const query = typeof variable.query === "string" ? variable.query : variable.query.query;
    const inner = /^label_values\((.+),\s*\w+\)$/.exec(query);
    if (!inner) throw new Error(`Cannot read the query of dashboard variable "${variable.name}": ${query}`);
    exprs.push(grafanaToPromql(inner[1]));
  }
  return exprs;
}
