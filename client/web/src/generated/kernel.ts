// Generated from crdt/src/kernel.rs (`state.kernel`) by
// `TANDEM_WRITE_TS=1 cargo test -p tandem-protocol --test typescript`; do not edit.

export type KernelStatus = "not_started" | "starting" | "idle" | "busy" | "dead";

export type KernelRuntime = "cpu" | "gpu";

export type Person = { 
/**
 * Their user id.
 */
id: string, 
/**
 * Their display name, as collaborators see it.
 */
name: string, };

export type InputPrompt = { 
/**
 * The waiting cell.
 */
cell: string, 
/**
 * The prompt given to `input()`.
 */
prompt: string, 
/**
 * Whether the answer is hidden (`getpass`).
 */
password: boolean, 
/**
 * Who ran the cell: the only person whose answer the runtime takes.
 */
by: Person | null, };

export type Resources = { 
/**
 * Memory in use, in bytes.
 */
memory_bytes: number, 
/**
 * The memory it may use, in bytes.
 */
memory_limit_bytes: number, 
/**
 * Disk in use, in bytes.
 */
disk_bytes: number, 
/**
 * The disk it may use, in bytes.
 */
disk_limit_bytes: number, };

export type Variable = { 
/**
 * The variable's name.
 */
name: string, 
/**
 * Its type: `tandem.Tensor`, `numpy.ndarray`, `pandas.DataFrame`, `pandas.Series`,
 * `int`, `float`, `str`, `numpy.float32`, ...
 */
type: string, 
/**
 * Dimensions, for tensors, arrays and frames.
 */
shape: number[] | null, 
/**
 * Element type (`float32`, ...), for tensors, arrays, Series and numpy scalars.
 */
dtype: string | null, 
/**
 * `cpu` or `cuda:N`, for tensors.
 */
device: string | null, 
/**
 * Size of the data in bytes (a frame's columns and index, not the Python objects
 * they may hold).
 */
bytes: number | null, 
/**
 * `repr` of a scalar, cut at 80 characters.
 */
value: string | null, };

export type KernelState = { 
/**
 * What the kernel is doing.
 */
status: KernelStatus, 
/**
 * The device.
 */
runtime: KernelRuntime, 
/**
 * The last execution count of this kernel (`[n]`), `null` before its first cell.
 */
execution_count: number | null, 
/**
 * The cells waiting, in order.
 */
queue: Array<string>, 
/**
 * The running cell.
 */
running: string | null, 
/**
 * Why the kernel is dead (or was shut down), for people.
 */
reason?: string, 
/**
 * When the kernel will be shut down for inactivity (ms since the Unix epoch), while idle.
 */
idle_shutdown_at?: number, 
/**
 * When the kernel reaches its maximum lifetime (ms since the Unix epoch).
 */
lifetime_ends_at?: number, 
/**
 * The variable inspector: the kernel's user variables after the last cell.
 */
variables: Array<Variable>, 
/**
 * On a GPU runtime: the card's name and memory.
 */
gpu?: string, 
/**
 * The stale cells, in notebook order.
 */
stale: Array<string>, 
/**
 * Who the kernel runs for, while there is one.
 */
holder?: Person, 
/**
 * The running cell waits in `input()` for the person who ran it.
 */
input?: InputPrompt, 
/**
 * The kernel's memory and disk use, while there is a kernel.
 */
resources?: Resources, };
