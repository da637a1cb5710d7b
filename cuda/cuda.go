package cuda

/*
#include <stdlib.h>
#include "wrappers.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

// Driver is the loaded CUDA driver, NVRTC and (when present) cuBLAS.
type Driver struct {
	cu, nvrtc, cublas *lib
	// CUBLASErr is why cuBLAS is missing (nil when loaded).
	CUBLASErr error
}

// Open loads the libraries named in libs (DefaultLibraries when empty) and
// initialises the driver. Without libcuda.so.1 the error is ErrNoDriver;
// without NVRTC ErrNoNVRTC. A missing cuBLAS is not an error: it is kept in
// CUBLASErr and the vendor GEMMs report it.
func Open(libs Libraries) (*Driver, error) {
	def := DefaultLibraries()
	if len(libs.Driver) == 0 {
		libs.Driver = def.Driver
	}
	if len(libs.NVRTC) == 0 {
		libs.NVRTC = def.NVRTC
	}
	if len(libs.CUBLAS) == 0 {
		libs.CUBLAS = def.CUBLAS
	}
	cu, err := open(libs.Driver, ErrNoDriver)
	if err != nil {
		return nil, err
	}
	if err := cu.bind(driverSymbols()...); err != nil {
		return nil, fmt.Errorf("load driver: %w", err)
	}
	d := &Driver{cu: cu}
	if err := d.check(C.cu_init(cu.sym("cuInit"), 0), "cuInit"); err != nil {
		return nil, err
	}
	if d.nvrtc, err = open(libs.NVRTC, ErrNoNVRTC); err != nil {
		return nil, err
	}
	if err := d.nvrtc.bind(nvrtcSymbols()...); err != nil {
		return nil, fmt.Errorf("load nvrtc: %w", err)
	}
	if d.cublas, err = open(libs.CUBLAS, ErrNoCUBLAS); err == nil {
		err = d.cublas.bind(cublasSymbols()...)
	}
	if err != nil {
		d.cublas, d.CUBLASErr = nil, err
	}
	return d, nil
}

// check turns a CUresult into an error naming the call.
func (d *Driver) check(r C.CUresult, what string) error {
	if r == 0 {
		return nil
	}
	var s *C.char
	msg := "unknown error"
	if C.cu_error_string(d.cu.sym("cuGetErrorString"), r, &s) == 0 && s != nil {
		msg = C.GoString(s)
	}
	return fmt.Errorf("%s: CUDA error %d: %s", what, int(r), msg)
}

// Version returns the driver's CUDA version as "12.4" and NVRTC's.
func (d *Driver) Version() (driver, nvrtc string, err error) {
	var v C.int
	if err := d.check(C.cu_int_out(d.cu.sym("cuDriverGetVersion"), &v), "cuDriverGetVersion"); err != nil {
		return "", "", err
	}
	var maj, mnr C.int
	if r := C.nv_version(d.nvrtc.sym("nvrtcVersion"), &maj, &mnr); r != 0 {
		return "", "", fmt.Errorf("nvrtcVersion: %d", int(r))
	}
	return fmt.Sprintf("%d.%d", v/1000, (v%1000)/10), fmt.Sprintf("%d.%d", maj, mnr), nil
}

// DeviceCount returns how many CUDA devices the driver sees.
func (d *Driver) DeviceCount() (int, error) {
	var n C.int
	if err := d.check(C.cu_int_out(d.cu.sym("cuDeviceGetCount"), &n), "cuDeviceGetCount"); err != nil {
		return 0, err
	}
	return int(n), nil
}

// Device attribute numbers (CUdevice_attribute).
const (
	attrMaxSharedPerBlock  = 8
	attrClockRate          = 13 // kHz
	attrMultiprocessors    = 16
	attrMemoryClockRate    = 36 // kHz
	attrGlobalMemBusWidth  = 37 // bits
	attrL2CacheSize        = 38
	attrPCIBusID           = 33
	attrPCIDeviceID        = 34
	attrPCIDomainID        = 50
	attrCCMajor            = 75
	attrCCMinor            = 76
	attrMaxSharedOptin     = 97
	funcAttrMaxDynamicSmem = 8 // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
)

// Attributes are what the peaks are computed from.
type Attributes struct {
	Name               string
	Major, Minor       int
	SMs                int
	ClockKHz           int
	MemClockKHz        int
	BusWidthBits       int
	L2Bytes            int
	MemoryBytes        uint64
	MaxSharedOptin     int
	MaxSharedPerBlock  int
	DriverVersion      string
	NVRTCVersion       string
	CUBLASAvailable    bool
	CUBLASUnavailable  string
	ComputeCapability  string
	ArchitectureOption string
	// PCIBusID is the device's PCI address as vhpc writes it everywhere
	// ("0000:3b:00.0"): how a CUDA ordinal is matched with the inventory
	// and with NVML, whose order may differ.
	PCIBusID string
	// PCIDomain, PCIBus and PCIDevice are its parts.
	PCIDomain, PCIBus, PCIDevice int
}

// Context is one device's primary context, made current on a locked OS
// thread by Bind. Every method must be called between Bind and Unbind on
// the same goroutine.
type Context struct {
	d     *Driver
	dev   C.int
	ctx   C.CUcontext
	Attrs Attributes
	blas  C.cublasHandle_t
}

// Context retains device ordinal's primary context and reads its attributes.
func (d *Driver) Context(ordinal int) (*Context, error) {
	c := &Context{d: d}
	if err := d.check(C.cu_device_get(d.cu.sym("cuDeviceGet"), &c.dev, C.int(ordinal)), "cuDeviceGet"); err != nil {
		return nil, err
	}
	if err := d.check(C.cu_primary_retain(d.cu.sym("cuDevicePrimaryCtxRetain"), &c.ctx, c.dev), "cuDevicePrimaryCtxRetain"); err != nil {
		return nil, err
	}
	if err := c.readAttributes(); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

func (c *Context) readAttributes() error {
	d := c.d
	a := &c.Attrs
	buf := make([]byte, 256)
	if err := d.check(C.cu_device_name(d.cu.sym("cuDeviceGetName"), (*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)), c.dev), "cuDeviceGetName"); err != nil {
		return err
	}
	a.Name = C.GoString((*C.char)(unsafe.Pointer(&buf[0])))
	for _, at := range []struct {
		id  int
		dst *int
	}{
		{attrCCMajor, &a.Major}, {attrCCMinor, &a.Minor}, {attrMultiprocessors, &a.SMs}, {attrClockRate, &a.ClockKHz},
		{attrMemoryClockRate, &a.MemClockKHz}, {attrGlobalMemBusWidth, &a.BusWidthBits}, {attrL2CacheSize, &a.L2Bytes},
		{attrMaxSharedOptin, &a.MaxSharedOptin}, {attrMaxSharedPerBlock, &a.MaxSharedPerBlock},
		{attrPCIDomainID, &a.PCIDomain}, {attrPCIBusID, &a.PCIBus}, {attrPCIDeviceID, &a.PCIDevice},
	} {
		var v C.int
		if err := d.check(C.cu_device_attr(d.cu.sym("cuDeviceGetAttribute"), &v, C.int(at.id), c.dev), fmt.Sprintf("cuDeviceGetAttribute(%d)", at.id)); err != nil {
			return err
		}
		*at.dst = int(v)
	}
	var mem C.size_t
	if err := d.check(C.cu_device_total_mem(d.cu.sym("cuDeviceTotalMem_v2"), &mem, c.dev), "cuDeviceTotalMem"); err != nil {
		return err
	}
	a.MemoryBytes = uint64(mem)
	var err error
	if a.DriverVersion, a.NVRTCVersion, err = d.Version(); err != nil {
		return err
	}
	a.CUBLASAvailable = d.cublas != nil
	if d.CUBLASErr != nil {
		a.CUBLASUnavailable = d.CUBLASErr.Error()
	}
	a.PCIBusID = fmt.Sprintf("%04x:%02x:%02x.0", a.PCIDomain, a.PCIBus, a.PCIDevice)
	a.ComputeCapability = fmt.Sprintf("%d.%d", a.Major, a.Minor)
	a.ArchitectureOption = fmt.Sprintf("--gpu-architecture=sm_%d%d", a.Major, a.Minor)
	return nil
}

// Bind locks the calling goroutine to its OS thread and makes the context
// current there.
func (c *Context) Bind() error {
	runtime.LockOSThread()
	if err := c.d.check(C.cu_ctx_set_current(c.d.cu.sym("cuCtxSetCurrent"), c.ctx), "cuCtxSetCurrent"); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	return nil
}

// Unbind undoes Bind.
func (c *Context) Unbind() { runtime.UnlockOSThread() }

// Close destroys the cuBLAS handle and releases the primary context.
func (c *Context) Close() error {
	var errs []error
	if c.blas != nil {
		if r := C.cb_destroy(c.d.cublas.sym("cublasDestroy_v2"), c.blas); r != 0 {
			errs = append(errs, fmt.Errorf("cublasDestroy: status %d", int(r)))
		}
		c.blas = nil
	}
	errs = append(errs, c.d.check(C.cu_primary_release(c.d.cu.sym("cuDevicePrimaryCtxRelease_v2"), c.dev), "cuDevicePrimaryCtxRelease"))
	return errors.Join(errs...)
}

// Synchronize waits for all work on the context.
func (c *Context) Synchronize() error {
	return c.d.check(C.cu_void(c.d.cu.sym("cuCtxSynchronize")), "cuCtxSynchronize")
}

// Ptr is a device address.
type Ptr uint64

// Alloc allocates bytes of device memory.
func (c *Context) Alloc(bytes int) (Ptr, error) {
	var p C.CUdeviceptr
	if err := c.d.check(C.cu_mem_alloc(c.d.cu.sym("cuMemAlloc_v2"), &p, C.size_t(bytes)), fmt.Sprintf("cuMemAlloc(%d)", bytes)); err != nil {
		return 0, err
	}
	return Ptr(p), nil
}

// Free releases device memory from Alloc.
func (c *Context) Free(p Ptr) error {
	return c.d.check(C.cu_mem_free(c.d.cu.sym("cuMemFree_v2"), C.CUdeviceptr(p)), "cuMemFree")
}

// Upload copies a host slice to the device.
func Upload[T any](c *Context, dst Ptr, src []T) error {
	if len(src) == 0 {
		return nil
	}
	n := len(src) * int(unsafe.Sizeof(src[0]))
	return c.d.check(C.cu_htod(c.d.cu.sym("cuMemcpyHtoD_v2"), C.CUdeviceptr(dst), unsafe.Pointer(&src[0]), C.size_t(n)), "cuMemcpyHtoD")
}

// Download copies device memory into a host slice.
func Download[T any](c *Context, dst []T, src Ptr) error {
	if len(dst) == 0 {
		return nil
	}
	n := len(dst) * int(unsafe.Sizeof(dst[0]))
	return c.d.check(C.cu_dtoh(c.d.cu.sym("cuMemcpyDtoH_v2"), unsafe.Pointer(&dst[0]), C.CUdeviceptr(src), C.size_t(n)), "cuMemcpyDtoH")
}

// CopyDtoD copies bytes between device buffers (the vendor bandwidth column).
func (c *Context) CopyDtoD(dst, src Ptr, bytes int) error {
	return c.d.check(C.cu_dtod(c.d.cu.sym("cuMemcpyDtoD_v2"), C.CUdeviceptr(dst), C.CUdeviceptr(src), C.size_t(bytes)), "cuMemcpyDtoD")
}

// Memset sets bytes of device memory to v.
func (c *Context) Memset(dst Ptr, v byte, bytes int) error {
	return c.d.check(C.cu_memset_d8(c.d.cu.sym("cuMemsetD8_v2"), C.CUdeviceptr(dst), C.uchar(v), C.size_t(bytes)), "cuMemsetD8")
}

// Event is a CUDA event on the default stream, for timing.
type Event struct {
	c *Context
	e C.CUevent
}

// NewEvent creates a timing event.
func (c *Context) NewEvent() (*Event, error) {
	ev := &Event{c: c}
	if err := c.d.check(C.cu_event_create(c.d.cu.sym("cuEventCreate"), &ev.e, 0), "cuEventCreate"); err != nil {
		return nil, err
	}
	return ev, nil
}

// Record enqueues the event on the default stream.
func (e *Event) Record() error {
	return e.c.d.check(C.cu_event_record(e.c.d.cu.sym("cuEventRecord"), e.e), "cuEventRecord")
}

// Destroy frees the event.
func (e *Event) Destroy() error {
	return e.c.d.check(C.cu_event_destroy(e.c.d.cu.sym("cuEventDestroy_v2"), e.e), "cuEventDestroy")
}

// Elapsed waits for end and returns the seconds between start and end.
func Elapsed(start, end *Event) (float64, error) {
	d := start.c.d
	if err := d.check(C.cu_event_sync(d.cu.sym("cuEventSynchronize"), end.e), "cuEventSynchronize"); err != nil {
		return 0, err
	}
	var ms C.float
	if err := d.check(C.cu_event_elapsed(d.cu.sym("cuEventElapsedTime"), &ms, start.e, end.e), "cuEventElapsedTime"); err != nil {
		return 0, err
	}
	return float64(ms) / 1e3, nil
}

// Time records events around f and returns the GPU seconds between them.
func (c *Context) Time(f func() error) (float64, error) {
	start, err := c.NewEvent()
	if err != nil {
		return 0, err
	}
	end, err := c.NewEvent()
	if err != nil {
		return 0, errors.Join(err, start.Destroy())
	}
	defer func() { _ = start.Destroy(); _ = end.Destroy() }()
	if err := start.Record(); err != nil {
		return 0, err
	}
	if err := f(); err != nil {
		return 0, err
	}
	if err := end.Record(); err != nil {
		return 0, err
	}
	return Elapsed(start, end)
}

// Module is compiled device code loaded into a context.
type Module struct {
	c *Context
	m C.CUmodule
}

// Compile compiles CUDA C source with NVRTC for this device's compute
// capability (a cubin for sm_XY) plus opts, and loads it. The error of a
// failed compile carries NVRTC's log.
func (c *Context) Compile(name, source string, opts ...string) (*Module, error) {
	cubin, log, err := c.d.compile(name, source, append([]string{c.Attrs.ArchitectureOption, "--std=c++17"}, opts...))
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w\n%s", name, err, log)
	}
	m := &Module{c: c}
	image := C.CBytes(cubin)
	defer C.free(image)
	if err := c.d.check(C.cu_module_load_data(c.d.cu.sym("cuModuleLoadData"), &m.m, image), "cuModuleLoadData "+name); err != nil {
		return nil, err
	}
	return m, nil
}

func (d *Driver) compile(name, source string, opts []string) (cubin []byte, log string, err error) {
	nv := d.nvrtc
	nvErr := func(r C.nvrtcResult, what string) error {
		if r == 0 {
			return nil
		}
		return fmt.Errorf("%s: %s", what, C.GoString(C.nv_error_string(nv.sym("nvrtcGetErrorString"), r)))
	}
	csrc, cname := C.CString(source), C.CString(name)
	defer C.free(unsafe.Pointer(csrc))
	defer C.free(unsafe.Pointer(cname))
	var prog C.nvrtcProgram
	if err := nvErr(C.nv_create(nv.sym("nvrtcCreateProgram"), &prog, csrc, cname), "nvrtcCreateProgram"); err != nil {
		return nil, "", err
	}
	defer C.nv_destroy(nv.sym("nvrtcDestroyProgram"), &prog)
	copts := (**C.char)(C.malloc(C.size_t(len(opts)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(copts))
	optv := unsafe.Slice(copts, len(opts))
	for i, o := range opts {
		optv[i] = C.CString(o)
		defer C.free(unsafe.Pointer(optv[i]))
	}
	compileErr := nvErr(C.nv_compile(nv.sym("nvrtcCompileProgram"), prog, C.int(len(opts)), copts), "nvrtcCompileProgram")
	var n C.size_t
	if C.nv_size(nv.sym("nvrtcGetProgramLogSize"), prog, &n) == 0 && n > 1 {
		buf := make([]byte, n)
		if C.nv_bytes(nv.sym("nvrtcGetProgramLog"), prog, (*C.char)(unsafe.Pointer(&buf[0]))) == 0 {
			log = string(buf[:n-1])
		}
	}
	if compileErr != nil {
		return nil, log, compileErr
	}
	if err := nvErr(C.nv_size(nv.sym("nvrtcGetCUBINSize"), prog, &n), "nvrtcGetCUBINSize"); err != nil {
		return nil, log, err
	}
	cubin = make([]byte, n)
	if err := nvErr(C.nv_bytes(nv.sym("nvrtcGetCUBIN"), prog, (*C.char)(unsafe.Pointer(&cubin[0]))), "nvrtcGetCUBIN"); err != nil {
		return nil, log, err
	}
	return cubin, log, nil
}

// Close unloads the module.
func (m *Module) Close() error {
	return m.c.d.check(C.cu_module_unload(m.c.d.cu.sym("cuModuleUnload"), m.m), "cuModuleUnload")
}

// Function is one kernel of a module.
type Function struct {
	c    *Context
	f    C.CUfunction
	name string
	// DynamicSmem is the dynamic shared memory each launch asks for.
	DynamicSmem int
}

// Function finds kernel name (declared extern "C" in the source).
func (m *Module) Function(name string) (*Function, error) {
	fn := &Function{c: m.c, name: name}
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	if err := m.c.d.check(C.cu_module_get_function(m.c.d.cu.sym("cuModuleGetFunction"), &fn.f, m.m, cn), "cuModuleGetFunction "+name); err != nil {
		return nil, err
	}
	return fn, nil
}

// SetDynamicSmem lets launches use bytes of dynamic shared memory (above
// 48 KiB needs this opt-in).
func (f *Function) SetDynamicSmem(bytes int) error {
	if err := f.c.d.check(C.cu_func_set_attr(f.c.d.cu.sym("cuFuncSetAttribute"), f.f, funcAttrMaxDynamicSmem, C.int(bytes)), "cuFuncSetAttribute "+f.name); err != nil {
		return err
	}
	f.DynamicSmem = bytes
	return nil
}

// Dim3 is a grid or block shape.
type Dim3 struct{ X, Y, Z int }

// Launch enqueues f on the default stream. Arguments are Ptr, int32,
// uint32, float32 or float64, in the kernel's parameter order.
func (f *Function) Launch(grid, block Dim3, args ...any) error {
	// Parameter values and the pointer array live in C memory: cgo must not
	// be handed Go memory holding pointers.
	const slot = 8
	vals := C.malloc(C.size_t(max(1, len(args)) * slot))
	ptrs := (*unsafe.Pointer)(C.malloc(C.size_t(max(1, len(args))) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(vals)
	defer C.free(unsafe.Pointer(ptrs))
	pv := unsafe.Slice(ptrs, len(args))
	for i, a := range args {
		p := unsafe.Add(vals, i*slot)
		switch v := a.(type) {
		case Ptr:
			*(*uint64)(p) = uint64(v)
		case int32:
			*(*int32)(p) = v
		case uint32:
			*(*uint32)(p) = v
		case int:
			if v > math.MaxInt32 || v < math.MinInt32 {
				return fmt.Errorf("launch %s: argument %d (%d) overflows int32", f.name, i, v)
			}
			*(*int32)(p) = int32(v)
		case float32:
			*(*float32)(p) = v
		case float64:
			*(*float64)(p) = v
		default:
			return fmt.Errorf("launch %s: argument %d has unsupported type %T", f.name, i, a)
		}
		pv[i] = p
	}
	one := func(x int) C.uint { return C.uint(max(x, 1)) }
	r := C.cu_launch(f.c.d.cu.sym("cuLaunchKernel"), f.f, one(grid.X), one(grid.Y), one(grid.Z),
		one(block.X), one(block.Y), one(block.Z), C.uint(f.DynamicSmem), (*unsafe.Pointer)(unsafe.Pointer(ptrs)))
	return f.c.d.check(r, "cuLaunchKernel "+f.name)
}
