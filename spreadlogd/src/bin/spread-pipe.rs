fn main() {
    std::process::exit(spreadlogd::tools::pipe::main(std::env::args().skip(1)));
}
