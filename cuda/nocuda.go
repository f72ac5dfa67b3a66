//go:build !cuda

package cuda

import "fmt"

// Available reports whether this build has CUDA support and a device.
func Available() bool { return false }

// DeviceCount fails: this build has no CUDA support.
func DeviceCount() (int, error) { return 0, errNotBuilt }

// Devices fails: this build has no CUDA support.
func Devices() ([]DeviceInfo, error) { return nil, errNotBuilt }

var errNotBuilt = fmt.Errorf("%w: built without the cuda tag (make cuda)", ErrNoDevice)

// DeviceProperties fails: this build has no CUDA support.
func DeviceProperties(dev int) (DeviceInfo, error) { return DeviceInfo{}, errNotBuilt }
