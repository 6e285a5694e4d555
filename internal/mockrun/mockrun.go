// Package mockrun runs a Pulumi program under mocks (no engine, no provider): what the
// components' Example functions use, so the compiler and `go test` check every example.
package mockrun

import (
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

type mocks struct {
	mu    sync.Mutex
	types map[string]int
	state State
}

// State adds to a resource's state what its provider or a controller would (the token an API
// server issues into a ServiceAccount token Secret); nil: the inputs are the state.
type State func(typeToken, name string) resource.PropertyMap

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	m.types[args.TypeToken]++
	m.mu.Unlock()
	state := args.Inputs
	if m.state != nil {
		state = args.Inputs.Copy()
		for k, v := range m.state(args.TypeToken, args.Name) {
			state[k] = v
		}
	}
	return args.Name + "-id", state, nil
}

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) { return args.Args, nil }

// Run runs program under mocks and returns how many resources of each type it registered.
func Run(program pulumi.RunFunc) (map[string]int, error) { return RunWith(program, nil) }

// RunWith is Run with resources' state added by state.
func RunWith(program pulumi.RunFunc, state State) (map[string]int, error) {
	m := &mocks{types: map[string]int{}, state: state}
	err := pulumi.RunErr(program, pulumi.WithMocks("kplane", "example", m))
	return m.types, err
}
