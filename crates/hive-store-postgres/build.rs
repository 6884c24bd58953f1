// `sqlx::migrate!` embeds the migrations folder at compile time; a new or changed migration must
// rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
