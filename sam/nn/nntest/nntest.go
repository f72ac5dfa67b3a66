// Package nntest holds what the backends' test suites share: running an op
// that is expected to fail and checking the *nn.Error it fails with. It is
// imported by tests only.
package nntest

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
)

// OpError runs f and returns the *nn.Error it fails with (nil if none).
// Any other panic (an index out of range, say) fails the test.
func OpError(t testing.TB, f func()) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic that is not an *nn.Error: %v", r)
		}
	}()
	func() {
		defer nn.Catch(&err)
		f()
	}()
	return err
}

// RequireFails checks that f fails with an *nn.Error wrapping target.
func RequireFails(t testing.TB, target error, f func(), msgAndArgs ...any) {
	t.Helper()
	err := OpError(t, f)
	require.Error(t, err, msgAndArgs...)
	var ne *nn.Error
	require.True(t, errors.As(err, &ne), "want *nn.Error, got %T: %v", err, err)
	require.ErrorIs(t, err, target, msgAndArgs...)
}
