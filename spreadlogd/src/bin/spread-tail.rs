fn main() {
    std::process::exit(spreadlogd::tools::tail::main(std::env::args().skip(1)));
}
