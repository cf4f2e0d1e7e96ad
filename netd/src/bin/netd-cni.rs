//! `netd-cni`: the CNI plugin (installed as `netd` in the runtime's plugin directories).
fn main() -> std::process::ExitCode {
    netd::cni::main()
}
