//! Rebuild when bpf-linker changes: cargo cannot see it as a dependency.
fn main() {
    let bpf_linker = which::which("bpf-linker")
        .expect("bpf-linker not on PATH: run `cargo xtask test` or see README");
    println!("cargo:rerun-if-changed={}", bpf_linker.display());
}
