package pack

import (
	"maps"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Recorder is a Pulumi mock (pulumi.WithMocks) that keeps what a program registers as the
// engine hands it to a stack policy: the inputs the provider SDK serialises and each property's
// dependencies. Unit tests run policies on programs whose providers cannot preview here.
type Recorder struct {
	// Outputs, when set, adds to a resource's state what its provider would (e.g. the token an
	// API server issues into a Secret).
	Outputs   func(args pulumi.MockResourceArgs) resource.PropertyMap
	mu        sync.Mutex
	Resources []Resource
	inputs    map[string]resource.PropertyMap
}

// NewResource records the resource; its ID is unlike any name, so only dependencies link.
func (m *Recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	urn := "urn:pulumi:test::kplane::" + args.TypeToken + "::" + args.Name
	if parent := resource.URN(args.RegisterRPC.GetParent()); parent != "" && parent.IsValid() {
		// A component's child: the URN the engine gives it, which its dependents name.
		urn = string(resource.NewURN(parent.Stack(), parent.Project(), parent.QualifiedType(), tokens.Type(args.TypeToken), args.Name))
	}
	deps := map[string][]string{}
	for prop, d := range args.RegisterRPC.GetPropertyDependencies() {
		deps[prop] = d.GetUrns()
	}
	m.mu.Lock()
	m.Resources = append(m.Resources, Resource{Type: args.TypeToken, Name: args.Name, URN: urn, Props: args.Inputs.Mappable(), Deps: deps})
	if m.inputs == nil {
		m.inputs = map[string]resource.PropertyMap{}
	}
	m.inputs[args.TypeToken+" "+args.Name] = args.Inputs
	m.mu.Unlock()
	state := args.Inputs
	if m.Outputs != nil {
		state = args.Inputs.Copy()
		for k, v := range m.Outputs(args) {
			state[k] = v
		}
	}
	return args.Name + "-4f1c2a", state, nil
}

// Call answers provider functions with their arguments.
func (m *Recorder) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return args.Args, nil
}

// Inputs are the recorded resources' inputs by "<type> <name>", for a component's unit tests.
func (m *Recorder) Inputs() map[string]resource.PropertyMap {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.inputs)
}
