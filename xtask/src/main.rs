fn main() {
    eprintln!("xtask: no subcommands yet");
    std::process::exit(2);
}
