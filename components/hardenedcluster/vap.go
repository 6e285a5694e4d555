package hardenedcluster

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/wellknown"
	admissionv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/admissionregistration/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// workloadRules match Pods and every controller that stamps out pods.
var workloadRules = admissionv1.NamedRuleWithOperationsArray{
	rule("", "pods", "pods/ephemeralcontainers", "replicationcontrollers"),
	rule("apps", "deployments", "replicasets", "statefulsets", "daemonsets"),
	rule("batch", "jobs", "cronjobs"),
}

func rule(group string, resources ...string) admissionv1.NamedRuleWithOperationsArgs {
	return admissionv1.NamedRuleWithOperationsArgs{
		ApiGroups: pulumi.ToStringArray([]string{group}), ApiVersions: pulumi.ToStringArray([]string{"v1"}),
		Operations: pulumi.ToStringArray([]string{"CREATE", "UPDATE"}), Resources: pulumi.ToStringArray(resources),
	}
}

// specChanged skips updates that leave the spec alone (labels, finalizers, owner references), so
// the garbage collector and other controllers can always finish their work on old objects.
const specChanged = "request.operation == 'CREATE' || !has(oldObject.spec) || object.spec != oldObject.spec"

// newAdmission installs the baseline with the chosen engine, after the team namespaces. It
// returns the policy names.
func newAdmission(ctx *pulumi.Context, name string, args *Args, now time.Time, namespaces []pulumi.Resource, opts ...pulumi.ResourceOption) ([]string, error) {
	if args.Admission.Engine == "gatekeeper" {
		return newGatekeeper(ctx, name, args, now, namespaces, opts...)
	}
	return newVAP(ctx, name, args, now, opts...)
}

// warnExpired tells the operator which exceptions of a policy have expired (they no longer apply).
func warnExpired(ctx *pulumi.Context, policy string, expired []Exception) {
	for _, e := range expired {
		_ = ctx.Log.Warn(fmt.Sprintf("exception to %s for %s/%s expired on %s and no longer applies; remove it from the arguments",
			policy, e.Namespace, e.Workload, e.Expires), nil)
	}
}

// newVAP installs the baseline as, per policy, a ValidatingAdmissionPolicy (CEL, evaluated
// in-process by the API server, failing closed) and its binding.
func newVAP(ctx *pulumi.Context, name string, args *Args, now time.Time, opts ...pulumi.ResourceOption) ([]string, error) {
	actions := []string{"Deny"}
	if args.Admission.Mode == "audit" {
		actions = []string{"Warn", "Audit"}
	}
	variables := admissionv1.VariableArray{}
	for _, v := range rules.Variables {
		variables = append(variables, admissionv1.VariableArgs{Name: pulumi.String(v[0]), Expression: pulumi.String(v[1])})
	}
	var names []string
	for _, p := range args.policies() {
		active, expired := args.activeExceptions(p.Name, now)
		warnExpired(ctx, p.Name, expired)
		conditions := admissionv1.MatchConditionArray{admissionv1.MatchConditionArgs{Name: pulumi.String("spec-changed"), Expression: pulumi.String(specChanged)}}
		for i, e := range active {
			conditions = append(conditions, admissionv1.MatchConditionArgs{
				Name: pulumi.String(ExceptionConditionName(i, e)), Expression: pulumi.String(e.exceptionCondition()),
			})
		}
		validations := admissionv1.ValidationArray{}
		for _, v := range p.CEL(rules.Literals) {
			validations = append(validations, admissionv1.ValidationArgs{
				Expression: pulumi.String(v[0]), MessageExpression: pulumi.String(v[1]), Reason: pulumi.String("Forbidden"),
			})
		}
		listed, err := json.Marshal(active)
		if err != nil {
			return nil, err
		}
		annotations := pulumi.StringMap{
			wellknown.DescriptionAnnotation: pulumi.String(p.Description),
			wellknown.ControlsAnnotation:    pulumi.String(strings.Join(p.Controls, ", ")),
			wellknown.ExceptionsAnnotation:  pulumi.String(string(listed)),
		}
		if len(expired) > 0 { // the policy pack fails the preview on these (kplane-exception-expired)
			gone, err := json.Marshal(expired)
			if err != nil {
				return nil, err
			}
			annotations[wellknown.ExpiredExceptionsAnnotation] = pulumi.String(string(gone))
		}
		labels := pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}
		policy, err := admissionv1.NewValidatingAdmissionPolicy(ctx, name+"-"+p.Name, &admissionv1.ValidatingAdmissionPolicyArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(p.Name), Labels: labels, Annotations: annotations},
			Spec: admissionv1.ValidatingAdmissionPolicySpecArgs{
				FailurePolicy:    pulumi.String("Fail"),
				MatchConstraints: admissionv1.MatchResourcesArgs{ResourceRules: workloadRules},
				MatchConditions:  conditions,
				Variables:        variables,
				Validations:      validations,
			},
		}, opts...)
		if err != nil {
			return nil, err
		}
		if _, err := admissionv1.NewValidatingAdmissionPolicyBinding(ctx, name+"-"+p.Name, &admissionv1.ValidatingAdmissionPolicyBindingArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(p.Name), Labels: labels},
			Spec: admissionv1.ValidatingAdmissionPolicyBindingSpecArgs{
				PolicyName:        policy.Metadata.Name().Elem(),
				ValidationActions: pulumi.ToStringArray(actions),
				MatchResources: admissionv1.MatchResourcesArgs{NamespaceSelector: metav1.LabelSelectorArgs{
					MatchExpressions: metav1.LabelSelectorRequirementArray{metav1.LabelSelectorRequirementArgs{
						Key: pulumi.String("kubernetes.io/metadata.name"), Operator: pulumi.String("NotIn"),
						Values: pulumi.ToStringArray(args.ExemptNamespacesFor(p.Name)),
					}},
				}},
			},
		}, append(opts, pulumi.DependsOn([]pulumi.Resource{policy}))...); err != nil {
			return nil, err
		}
		names = append(names, p.Name)
	}
	return names, nil
}
