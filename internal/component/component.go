// Package component is what every kplane component's constructor does first: take nil
// arguments as the zero value, validate them (bad input creates nothing), and register the
// component resource under its type token, kplane:index:<Kind>.
package component

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Register validates args (nil: the zero value) and registers r as kplane:index:<kind> named
// name; it returns the arguments to build from. A validation error names the component.
func Register[A any, P interface {
	*A
	Validate() error
}](ctx *pulumi.Context, kind, name string, args P, r pulumi.ComponentResource, opts ...pulumi.ResourceOption) (P, error) {
	if args == nil {
		args = new(A)
	}
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	if err := ctx.RegisterComponentResource("kplane:index:"+kind, name, r, opts...); err != nil {
		return nil, err
	}
	return args, nil
}
