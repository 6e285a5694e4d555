// Package report turns a preview's policy findings into a compliance report an auditor reads:
// per control of the catalog (CIS Kubernetes 1.12, KISA, ISMS-P), whether it passed, was
// violated (which resource, why, how to fix), is checked on the nodes, needs a manual attestation,
// or is not covered; in Korean or English, as Markdown (for the PR comment), HTML and JSON.
package report

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"html/template"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/nodecheck"
	"github.com/kplane/kplane/policies/controls"
	"github.com/kplane/kplane/policies/pack"
)

// Finding is one policy violation reported by the engine.
type Finding struct {
	Policy   string `json:"policy"`
	Pack     string `json:"pack"`
	Level    string `json:"level"` // mandatory, advisory
	Resource string `json:"resource"`
	Message  string `json:"message"`
}

// Status of a control.
type Status string

const (
	Violated   Status = "violated"
	Pass       Status = "pass"
	NodeCheck  Status = "node-check"
	Manual     Status = "manual"
	NotCovered Status = "not-covered"
)

// Control is one control's result.
type Control struct {
	Framework string    `json:"framework"`
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Status    Status    `json:"status"`
	Policies  []string  `json:"policies,omitempty"`
	Findings  []Finding `json:"findings,omitempty"`
	Note      string    `json:"note,omitempty"`
}

// Report is the whole of it.
type Report struct {
	Environment  string            `json:"environment"`
	Lang         string            `json:"lang"`
	Generated    string            `json:"generated"`
	Packs        []string          `json:"packs"`
	Nodes        []string          `json:"nodes,omitempty"` // nodes whose check reports were read
	Mandatory    int               `json:"mandatoryViolations"`
	Advisory     int               `json:"advisoryViolations"`
	NodeFailures int               `json:"nodeCheckFailures"`
	Summary      map[string]int    `json:"summary"` // "<framework> <status>" -> count
	Controls     []Control         `json:"controls"`
	Findings     []Finding         `json:"findings"`
	Fixes        map[string]string `json:"fixes"` // policy -> remediation
	// NotApplied lists the policies that judged nothing: the stack declares none of their
	// subjects (no backup, realm, bucket, ...), so their controls are not counted as passed.
	NotApplied []string `json:"notApplied,omitempty"`
	// NotAppliedWhy says, per policy not applied, what the stack would have to declare.
	NotAppliedWhy map[string]string `json:"notAppliedWhy,omitempty"`
	// Exceptions are the environment's admission exceptions with the days each has left
	// (negative: expired; the pack's kplane-exception-expired fails the preview on those).
	Exceptions []ExceptionStatus `json:"exceptions,omitempty"`
}

// ExceptionStatus is one admission exception as auditors read it: with the days it has left.
type ExceptionStatus struct {
	hardenedcluster.Exception
	DaysLeft int `json:"daysLeft"`
}

// WithExceptions lists exceptions in the report, by days left (soonest first), judged on now.
func (r *Report) WithExceptions(list []hardenedcluster.Exception, now time.Time) {
	y, m, d := now.UTC().Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	r.Exceptions = nil
	for _, e := range list {
		left := 0
		if until, err := time.Parse("2006-01-02", e.Expires); err == nil {
			left = int(until.Sub(today).Hours() / 24)
		}
		r.Exceptions = append(r.Exceptions, ExceptionStatus{Exception: e, DaysLeft: left})
	}
	sort.SliceStable(r.Exceptions, func(i, j int) bool { return r.Exceptions[i].DaysLeft < r.Exceptions[j].DaysLeft })
}

// Build evaluates the catalog against the packs that ran and their findings, and the node
// checks' latest reports (the ConfigMaps kplane-nodecheck files; none: node-checked controls
// say so without a result). applied names the policies that judged something in the stack
// (what the packs wrote to pack.CoverageEnv); nil counts every policy as applied.
func Build(env, lang string, packs []*pack.Pack, findings []Finding, applied []string, nodes []nodecheck.Report, now time.Time) (*Report, error) {
	if lang != "en" && lang != "ko" {
		return nil, fmt.Errorf("REPORT_LANG %q: en or ko", lang)
	}
	cat, err := controls.Load()
	if err != nil {
		return nil, err
	}
	r := &Report{Environment: env, Lang: lang, Generated: now.UTC().Format(time.RFC3339), Summary: map[string]int{}, Findings: append([]Finding{}, findings...), Fixes: map[string]string{}}
	for i := range r.Findings {
		// The engine's message ends with the English fix; the report gives the fix in its language.
		r.Findings[i].Message, _, _ = strings.Cut(r.Findings[i].Message, "; fix: ")
	}
	byControl := map[string][]string{} // "CIS 5.2.2" -> policies
	for _, p := range packs {
		r.Packs = append(r.Packs, p.Name+"@"+p.Version)
		for _, pol := range p.Policies {
			r.Fixes[pol.Name] = pol.Remediation
			if lang == "ko" {
				r.Fixes[pol.Name] = pol.RemediationKo
			}
			if applied != nil && !slices.Contains(applied, pol.Name) {
				r.NotApplied = append(r.NotApplied, pol.Name)
				if r.NotAppliedWhy == nil {
					r.NotAppliedWhy = map[string]string{}
				}
				r.NotAppliedWhy[pol.Name] = pol.Subjects
				if lang == "ko" {
					r.NotAppliedWhy[pol.Name] = pol.SubjectsKo
				}
				continue
			}
			for _, c := range pol.Controls {
				byControl[c.String()] = append(byControl[c.String()], pol.Name)
			}
		}
	}
	nodeChecked := map[string]bool{}
	for _, ch := range nodecheck.Checks() {
		nodeChecked["CIS "+ch.ID] = true
		for _, k := range ch.KISA {
			nodeChecked["KISA "+k] = true
		}
	}
	// Node results per control: failures become findings, a pass anywhere without failure a pass.
	nodeFindings := map[string][]Finding{}
	nodePassed := map[string]bool{}
	for _, n := range nodes {
		r.Nodes = append(r.Nodes, n.Node)
		for _, res := range n.Results {
			keys := append([]string{"CIS " + res.ID}, prefixed("KISA ", res.KISA)...)
			for _, key := range keys {
				switch res.Status {
				case nodecheck.Fail:
					nodeFindings[key] = append(nodeFindings[key], nodeFinding(n.Node, res))
				case nodecheck.Pass:
					nodePassed[key] = true
				}
			}
			if res.Status == nodecheck.Fail {
				r.Findings = append(r.Findings, nodeFinding(n.Node, res))
				r.Fixes["node check "+res.ID] = res.Fix
				r.NodeFailures++
			}
		}
	}
	for _, f := range findings {
		switch f.Level {
		case "mandatory":
			r.Mandatory++
		default:
			r.Advisory++
		}
	}
	result := func(framework, id, title string, manual bool) Control {
		key := framework + " " + id
		c := Control{Framework: framework, ID: id, Title: title, Policies: byControl[key]}
		for _, f := range findings {
			if slices.Contains(c.Policies, f.Policy) {
				c.Findings = append(c.Findings, f)
			}
		}
		c.Findings = append(c.Findings, nodeFindings[key]...)
		switch {
		case len(c.Findings) > 0:
			c.Status = Violated
		case len(c.Policies) > 0 || nodePassed[key]:
			c.Status = Pass
		case nodeChecked[key]:
			c.Status = NodeCheck
		case manual:
			c.Status = Manual
		default:
			c.Status = NotCovered
		}
		return c
	}
	cis := map[string]Control{}
	for _, x := range cat.CIS {
		c := result("CIS", x.ID, x.Title, x.Assessment == "manual")
		cis[x.ID] = c
		r.Controls = append(r.Controls, c)
	}
	for _, k := range cat.KISA {
		title := k.En
		if lang == "ko" {
			title = k.Ko
		}
		c := result("KISA", k.ID, title, len(k.CIS) == 0)
		c.Note = k.Note
		// Through the crosswalk: the KISA item is as good as its CIS controls.
		for _, id := range k.CIS {
			x := cis[id]
			c.Findings = append(c.Findings, x.Findings...)
			c.Policies = appendNew(c.Policies, x.Policies...)
			if worse(x.Status, c.Status) {
				c.Status = x.Status
			}
		}
		r.Controls = append(r.Controls, c)
	}
	for _, m := range cat.ISMS {
		title := m.En
		if lang == "ko" {
			title = m.Ko
		}
		r.Controls = append(r.Controls, result("ISMS-P", m.ID, title, true))
	}
	for _, c := range r.Controls {
		r.Summary[c.Framework+" "+string(c.Status)]++
	}
	return r, nil
}

// rank orders statuses from worst to best for the crosswalk.
var rank = map[Status]int{Violated: 0, NotCovered: 1, Manual: 2, NodeCheck: 3, Pass: 4}

func worse(a, b Status) bool { return rank[a] < rank[b] }

func nodeFinding(node string, res nodecheck.Result) Finding {
	return Finding{Policy: "node check " + res.ID, Pack: "kplane-nodecheck", Level: "node", Resource: node, Message: res.Title + ": " + res.Detail}
}

func prefixed(p string, list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = p + s
	}
	return out
}

func appendNew(list []string, items ...string) []string {
	for _, s := range items {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

// JSON is the report for machines.
func (r *Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

var words = map[string]map[string]string{
	"en": {"title": "Compliance report", "env": "Environment", "generated": "Generated", "packs": "Policy packs",
		"mandatory": "mandatory violations", "advisory": "advisory violations", "findings": "Violations", "controls": "Controls",
		"framework": "Framework", "control": "Control", "status": "Status", "policies": "Checked by", "fix": "Fix", "resource": "Resource",
		"violated": "violated", "pass": "pass", "node-check": "checked on nodes (kplane-nodecheck)", "manual": "manual attestation", "not-covered": "not covered",
		"none": "No violations.", "summary": "Summary", "level-mandatory": "mandatory", "level-advisory": "advisory",
		"level-node": "node check", "nodefail": "node check failures",
		"notapplied": "Not applied (the stack declares nothing they judge; their controls are not counted as passed)", "nonedeclared": "the stack declares no",
		"exceptions": "Admission exceptions", "exception": "Exception", "owner": "Owner", "ticket": "Ticket", "reason": "Reason",
		"expires": "Last day", "daysleft": "Days left", "expired": "expired"},
	"ko": {"title": "컴플라이언스 보고서", "env": "환경", "generated": "생성 시각", "packs": "정책 팩",
		"mandatory": "필수(mandatory) 위반", "advisory": "권고(advisory) 위반", "findings": "위반 사항", "controls": "통제 항목",
		"framework": "기준", "control": "항목", "status": "상태", "policies": "점검 정책", "fix": "조치 방법", "resource": "리소스",
		"violated": "위반", "pass": "충족", "node-check": "노드 점검(kplane-nodecheck)", "manual": "수동 확인 필요", "not-covered": "미적용",
		"none": "위반 사항이 없습니다.", "summary": "요약", "level-mandatory": "필수", "level-advisory": "권고",
		"level-node": "노드 점검", "nodefail": "노드 점검 실패",
		"notapplied": "적용 대상 없음(스택에 점검 대상이 없어 해당 통제는 충족으로 집계하지 않음)", "nonedeclared": "스택에 선언되지 않음:",
		"exceptions": "어드미션 예외", "exception": "예외", "owner": "담당", "ticket": "티켓", "reason": "사유",
		"expires": "마지막 날", "daysleft": "남은 일수", "expired": "만료"},
}

func (r *Report) w(key string) string { return words[r.Lang][key] }

// Markdown is the report for a pull-request comment: totals, every violation with its fix, and
// per framework the count of controls by status.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: %s\n\n", r.w("title"), r.Environment)
	fmt.Fprintf(&b, "%s: %s · %s: %s\n\n", r.w("generated"), r.Generated, r.w("packs"), strings.Join(r.Packs, ", "))
	fmt.Fprintf(&b, "**%d** %s, **%d** %s, **%d** %s\n\n", r.Mandatory, r.w("mandatory"), r.Advisory, r.w("advisory"), r.NodeFailures, r.w("nodefail"))
	fmt.Fprintf(&b, "## %s\n\n", r.w("findings"))
	if len(r.Findings) == 0 {
		b.WriteString(r.w("none") + "\n\n")
	} else {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n|---|---|---|---|\n", r.w("status"), r.w("policies"), r.w("resource"), r.w("fix"))
		for _, f := range r.Findings {
			fmt.Fprintf(&b, "| %s | `%s` | `%s` | %s. %s |\n", r.w("level-"+f.Level), f.Policy, shortURN(f.Resource), mdEscape(f.Message), mdEscape(r.Fixes[f.Policy]))
		}
		b.WriteString("\n")
	}
	if len(r.NotApplied) > 0 {
		fmt.Fprintf(&b, "%s:\n\n", r.w("notapplied"))
		for _, name := range r.NotApplied {
			fmt.Fprintf(&b, "- `%s`: %s %s\n", name, r.w("nonedeclared"), r.NotAppliedWhy[name])
		}
		b.WriteString("\n")
	}
	if len(r.Exceptions) > 0 {
		fmt.Fprintf(&b, "## %s\n\n| %s | %s | %s | %s | %s | %s |\n|---|---|---|---|---|---|\n", r.w("exceptions"), r.w("exception"), r.w("owner"),
			r.w("ticket"), r.w("reason"), r.w("expires"), r.w("daysleft"))
		for _, e := range r.Exceptions {
			fmt.Fprintf(&b, "| `%s` %s/%s | %s | %s | %s | %s | %s |\n", e.Policy, e.Namespace, cmp.Or(e.Workload, "*"), mdEscape(e.Owner), mdEscape(e.Ticket),
				mdEscape(e.Reason), e.Expires, r.daysLeft(e))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "## %s\n\n| %s | %s | %s | %s | %s | %s |\n|---|---|---|---|---|---|\n", r.w("summary"), r.w("framework"),
		r.w("violated"), r.w("pass"), r.w("node-check"), r.w("manual"), r.w("not-covered"))
	for _, fw := range []string{"CIS", "KISA", "ISMS-P"} {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", fw, r.Summary[fw+" violated"], r.Summary[fw+" pass"], r.Summary[fw+" node-check"], r.Summary[fw+" manual"], r.Summary[fw+" not-covered"])
	}
	b.WriteString("\n")
	return b.String()
}

func (r *Report) daysLeft(e ExceptionStatus) string {
	if e.DaysLeft < 0 {
		return fmt.Sprintf("%s (%d)", r.w("expired"), e.DaysLeft)
	}
	return strconv.Itoa(e.DaysLeft)
}

func shortURN(urn string) string {
	if i := strings.LastIndex(urn, "::"); i >= 0 {
		return urn[i+2:]
	}
	return urn
}

func mdEscape(s string) string { return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s) }

var page = template.Must(template.New("report").Funcs(template.FuncMap{"short": shortURN}).Parse(`<!doctype html>
<html lang="{{.R.Lang}}"><head><meta charset="utf-8"><title>{{.W.title}}: {{.R.Environment}}</title>
<style>
body{font-family:system-ui,"Noto Sans KR","Malgun Gothic",sans-serif;margin:2rem;color:#1b1f24;max-width:72rem}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}.violated{background:#ffebe9}.pass{background:#dafbe1}.node-check{background:#ddf4ff}.manual{background:#fff8c5}.not-covered{background:#f6f8fa}
.totals span{display:inline-block;margin-right:1.5rem;font-size:1.2rem}code{font-size:.9em}
</style></head><body>
<h1>{{.W.title}}: {{.R.Environment}}</h1>
<p>{{.W.generated}}: {{.R.Generated}} · {{.W.packs}}: {{range $i, $p := .R.Packs}}{{if $i}}, {{end}}{{$p}}{{end}}</p>
<p class="totals"><span><b>{{.R.Mandatory}}</b> {{.W.mandatory}}</span><span><b>{{.R.Advisory}}</b> {{.W.advisory}}</span><span><b>{{.R.NodeFailures}}</b> {{.W.nodefail}}</span></p>
<h2>{{.W.findings}}</h2>
{{if .R.Findings}}<table><tr><th>{{.W.status}}</th><th>{{.W.policies}}</th><th>{{.W.resource}}</th><th>{{.W.fix}}</th></tr>
{{range .R.Findings}}<tr class="violated"><td>{{index $.W (printf "level-%s" .Level)}}</td><td><code>{{.Policy}}</code></td><td><code>{{short .Resource}}</code></td><td>{{.Message}}. {{index $.R.Fixes .Policy}}</td></tr>
{{end}}</table>{{else}}<p>{{.W.none}}</p>{{end}}
{{if .R.NotApplied}}<p>{{.W.notapplied}}:</p><ul>{{range .R.NotApplied}}<li><code>{{.}}</code>: {{$.W.nonedeclared}} {{index $.R.NotAppliedWhy .}}</li>{{end}}</ul>{{end}}
{{if .R.Exceptions}}<h2>{{.W.exceptions}}</h2>
<table><tr><th>{{.W.exception}}</th><th>{{.W.owner}}</th><th>{{.W.ticket}}</th><th>{{.W.reason}}</th><th>{{.W.expires}}</th><th>{{.W.daysleft}}</th></tr>
{{range .R.Exceptions}}<tr{{if lt .DaysLeft 0}} class="violated"{{end}}><td><code>{{.Policy}}</code> {{.Namespace}}/{{or .Workload "*"}}</td><td>{{.Owner}}</td><td>{{.Ticket}}</td><td>{{.Reason}}</td><td>{{.Expires}}</td><td>{{$.R.DaysLeftText .}}</td></tr>
{{end}}</table>{{end}}
<h2>{{.W.controls}}</h2>
<table><tr><th>{{.W.framework}}</th><th>{{.W.control}}</th><th>{{.W.status}}</th><th>{{.W.policies}}</th></tr>
{{range .R.Controls}}<tr class="{{.Status}}"><td>{{.Framework}}</td><td><b>{{.ID}}</b> {{.Title}}{{if .Note}}<br><small>{{.Note}}</small>{{end}}</td><td>{{index $.W (printf "%s" .Status)}}</td><td>{{range .Policies}}<code>{{.}}</code> {{end}}</td></tr>
{{end}}</table>
</body></html>
`))

// DaysLeftText is an exception's days left as the report prints them.
func (r *Report) DaysLeftText(e ExceptionStatus) string { return r.daysLeft(e) }

// HTML is the report for people: every control of every framework with its status.
func (r *Report) HTML() (string, error) {
	var b bytes.Buffer
	err := page.Execute(&b, map[string]any{"R": r, "W": words[r.Lang]})
	return b.String(), err
}

// SortFindings orders findings by level (mandatory first), policy and resource.
func SortFindings(f []Finding) {
	sort.Slice(f, func(i, j int) bool {
		if f[i].Level != f[j].Level {
			return f[i].Level == "mandatory"
		}
		if f[i].Policy != f[j].Policy {
			return f[i].Policy < f[j].Policy
		}
		return f[i].Resource < f[j].Resource
	})
}
