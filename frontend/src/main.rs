//! Entry point of the browser app: everything lives in the `albedo_frontend` library.

fn main() {
    albedo_frontend::start();
}
