//! Prints, for each file named, how many records read, how many were rejected and why.
use std::io::BufReader;

fn main() {
    for path in std::env::args().skip(1) {
        let file = std::fs::File::open(&path).expect("open");
        let mut input = BufReader::new(file);
        let head = std::io::BufRead::fill_buf(&mut input)
            .expect("read")
            .to_vec();
        let format = shoko_marc::Format::sniff(&head);
        let (mut ok, mut bad, mut warn) = (0, 0, 0);
        let mut reasons = Vec::new();
        for r in shoko_marc::reader(format, input) {
            match r.expect("io") {
                Ok(rec) => {
                    ok += 1;
                    warn += rec.warnings.len();
                }
                Err(e) => {
                    bad += 1;
                    reasons.push(e.to_string());
                }
            }
        }
        println!("{path}\t{ok}\t{bad}\t{warn}\t{}", reasons.join(" | "));
    }
}
