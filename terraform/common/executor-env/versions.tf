terraform {
  # Cross-variable validation and the `terraform test` mocks the tests use need 1.9.
  required_version = ">= 1.9"
}
