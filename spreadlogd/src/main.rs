fn main() {
    std::process::exit(spreadlogd::app::spreadlogd_main(std::env::args().skip(1)));
}
