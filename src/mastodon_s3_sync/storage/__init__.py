"""Object stores: the S3 clients (botocore and the lean hot-path client), listings, retries."""
